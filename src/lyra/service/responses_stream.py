"""A streamed chat answer as the Responses API's events, one chat.completion.chunk at a time.

The events are those OpenAI's SDKs consume (`responses.stream()`, `create(stream=True)`):
response.created and response.in_progress, then for each output item output_item.added, its
content_part.added and text (or reasoning_text, or function_call_arguments) deltas and done events,
output_item.done, and last response.completed, response.incomplete (the answer hit
max_output_tokens) or response.failed (an error after the stream began). Every event carries a
`sequence_number`, counting from 0.

An item of text or reasoning ends when another item begins; a tool call's item stays open until
the answer ends, since its argument fragments may interleave with the next call's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lyra.service.responses_render import (
    Shell,
    function_call_item,
    item_id,
    logprobs_of,
    message_item,
    reasoning_item,
    response_object,
    status_of,
    usage_of,
)

Event = dict[str, Any]
_Kind = Literal["message", "reasoning", "function_call"]


@dataclass(slots=True)
class _Item:
    kind: _Kind
    index: int  # output_index
    id: str
    text: str = ""  # the message's text, the reasoning's text, or the call's arguments
    call_id: str = ""
    name: str = ""
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    details: list[Any] = field(default_factory=list)  # OpenRouter's reasoning_details
    status: str | None = None  # set when the item is done


class ResponseEvents:
    """Turns one chat stream's chunks into Responses events; `finish` or `fail` ends it."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.model = str(shell.echo.get("model") or "")
        self.provider: object = None
        self.finish_reason: object = None
        self.usage: dict[str, Any] | None = None
        self.started = False
        self.ended = False
        self._sequence = 0
        self._items: list[_Item] = []
        self._text: _Item | None = None  # the open message or reasoning item
        self._calls: dict[int, _Item] = {}  # tool-call items by the chunk's index

    def chunk(self, chunk: Mapping[str, Any]) -> list[Event]:
        """The events one chat.completion.chunk brings."""
        events = self._start(chunk.get("model"))
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]
        if chunk.get("provider") is not None:
            self.provider = chunk["provider"]
        usage = usage_of(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            delta = delta if isinstance(delta, Mapping) else {}
            reasoning = delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                events += self._text_delta("reasoning", reasoning)
            details = delta.get("reasoning_details")
            if isinstance(details, list) and details:
                if self._text is None or self._text.kind != "reasoning":
                    events += self._open_text("reasoning")
                assert self._text is not None
                self._text.details.extend(details)
            content = delta.get("content")
            if isinstance(content, str) and content:
                events += self._text_delta("message", content, logprobs_of(choice))
            for call in delta.get("tool_calls") or []:
                if isinstance(call, Mapping):
                    events += self._call_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def finish(self) -> list[Event]:
        """The end of the answer (chat's [DONE]): every item's done events, then the final response."""
        events = self._start(None)
        if not self._items:
            events += self._open_text("message")  # an empty answer is still one (empty) message
        status, incomplete = status_of(self.finish_reason)
        for item in self._items:
            if item.status is None:
                events += self._close(item, status)
        self.ended = True
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return [*events, self._event(kind, response=self.response(status, incomplete=incomplete))]

    def fail(self, error: Mapping[str, Any]) -> list[Event]:
        """An error after the stream began (`error` is OpenAI's {message, type, param, code}): the
        response fails, with what it had produced so far."""
        events = self._start(None)
        self.ended = True
        failure = {"code": str(error.get("code") or error.get("type") or "server_error"),
                   "message": str(error.get("message") or "the answer failed")}
        return [*events, self._event("response.failed", response=self.response("failed", error=failure))]

    def response(self, status: str, *, incomplete: dict[str, Any] | None = None,
                 error: dict[str, Any] | None = None) -> dict[str, Any]:
        """The Response object as it stands (the whole answer, once the stream has finished)."""
        output = [self._full(item, item.status or ("completed" if status == "completed" else "incomplete"))
                  for item in self._items]
        return response_object(self.shell, model=self.model, status=status, output=output, usage=self.usage,
                               incomplete=incomplete, error=error, provider=self.provider)

    # --- lifecycle ----------------------------------------------------------------------------

    def _start(self, model: object) -> list[Event]:
        if self.started:
            return []
        self.started = True
        if isinstance(model, str) and model:
            self.model = model
        begun = {"response": response_object(self.shell, model=self.model, status="in_progress", output=[],
                                             usage=None)}
        return [self._event("response.created", **begun), self._event("response.in_progress", **begun)]

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    # --- items --------------------------------------------------------------------------------

    def _text_delta(self, kind: _Kind, text: str,
                    logprobs: list[dict[str, Any]] | None = None) -> list[Event]:
        events = [] if self._text is not None and self._text.kind == kind else self._open_text(kind)
        item = self._text
        assert item is not None
        item.text += text
        item.logprobs += logprobs or []
        name = "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
        extra: dict[str, Any] = {"logprobs": logprobs or []} if kind == "message" else {}
        return [*events, self._event(name, item_id=item.id, output_index=item.index, content_index=0,
                                     delta=text, **extra)]

    def _open_text(self, kind: _Kind) -> list[Event]:
        events = self._close(self._text, "completed") if self._text is not None else []
        item = self._add(kind, item_id("msg" if kind == "message" else "rs"))
        self._text = item
        part = ({"type": "output_text", "text": "", "annotations": [], "logprobs": []} if kind == "message"
                else {"type": "reasoning_text", "text": ""})
        return [*events, self._added(item),
                self._event("response.content_part.added", item_id=item.id, output_index=item.index,
                            content_index=0, part=part)]

    def _call_delta(self, call: Mapping[str, Any]) -> list[Event]:
        index = call.get("index", 0)
        index = index if isinstance(index, int) else 0
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        events: list[Event] = []
        item = self._calls.get(index)
        if item is None:
            if self._text is not None:  # the text before the calls is complete
                events += self._close(self._text, "completed")
            item = self._add("function_call", item_id("fc"))
            item.call_id = str(call.get("id") or item_id("call"))
            item.name = str(function.get("name") or "")
            self._calls[index] = item
            events.append(self._added(item))
        elif not item.name and isinstance(function.get("name"), str):
            item.name = function["name"]
        fragment = function.get("arguments")
        if isinstance(fragment, str) and fragment:
            item.text += fragment
            events.append(self._event("response.function_call_arguments.delta", item_id=item.id,
                                      output_index=item.index, delta=fragment))
        return events

    def _add(self, kind: _Kind, id: str) -> _Item:
        item = _Item(kind=kind, index=len(self._items), id=id)
        self._items.append(item)
        return item

    def _added(self, item: _Item) -> Event:
        return self._event("response.output_item.added", output_index=item.index,
                           item=self._full(item, "in_progress", begun=True))

    def _close(self, item: _Item, status: str) -> list[Event]:
        """An item's done events: its text or arguments whole, its part, and the item itself."""
        item.status = status
        if self._text is item:
            self._text = None
        where = {"item_id": item.id, "output_index": item.index}
        if item.kind == "function_call":
            events = [self._event("response.function_call_arguments.done", **where, name=item.name,
                                  arguments=item.text)]
        elif item.kind == "message":
            part = {"type": "output_text", "text": item.text, "annotations": [], "logprobs": item.logprobs}
            events = [self._event("response.output_text.done", **where, content_index=0, text=item.text,
                                  logprobs=item.logprobs),
                      self._event("response.content_part.done", **where, content_index=0, part=part)]
        else:
            events = [self._event("response.reasoning_text.done", **where, content_index=0, text=item.text),
                      self._event("response.content_part.done", **where, content_index=0,
                                  part={"type": "reasoning_text", "text": item.text})]
        return [*events, self._event("response.output_item.done", output_index=item.index,
                                     item=self._full(item, status))]

    def _full(self, item: _Item, status: str, *, begun: bool = False) -> dict[str, Any]:
        """The item as output shows it; `begun` is its empty form for output_item.added."""
        if item.kind == "function_call":
            arguments = "" if begun else item.text
            return function_call_item(item.id, item.call_id, item.name, arguments, status=status)
        if item.kind == "message":
            if begun:
                return {"type": "message", "id": item.id, "status": status, "role": "assistant",
                        "content": []}
            return message_item(item.id, item.text, status=status, logprobs=item.logprobs)
        if begun:
            return {"type": "reasoning", "id": item.id, "summary": [], "content": []}
        return reasoning_item(item.id, item.text, item.details)
