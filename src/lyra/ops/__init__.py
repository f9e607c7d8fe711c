"""The trading day: the task schedule, the live runner and its panel, the cost plan, health checks."""
