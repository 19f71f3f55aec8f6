"""A model's chat template, rendered within a time and size budget, and stoppable.

The template is a Jinja program from whoever made the GGUF. It renders the way Transformers and
llama-cpp-python render it (an immutable sandbox, trim_blocks and lstrip_blocks, the `generation`
tag, loop controls, Transformers' `tojson`, `raise_exception`, `strftime_now`), with limits a
hostile template cannot get around:

- time: every render (and the compile at load) has a deadline and stops on request, through
  interruptible.py; no per-step hook, so a normal render costs what it cost before.
- size: a deadline cannot stop one long C call, and memory fills faster than any deadline, so
  every operation that can multiply a size is checked before it runs (`*`, `**`, string padding
  and widths, `replace`, `join`, `indent`, ...); every value made, the `~` operator and the output
  are capped at `size_limit` characters (8 MiB, or 4x the conversation for a longer one), and all
  values made in one render together at 16x that (a list or tuple a call returns, like `s.split()`
  or `s.partition()`, counted by its strings' characters and 16 per item), which bounds the memory
  a render can hold.
  Jinja's sandbox already caps `range()` at 100,000 items.
- printing: a list may hold one 8 MB string 10,000 times for 80 KB, so whatever turns a container
  into text (output, `~`, `%`, `format`, `tojson`, `string`, `join`, ...) first sizes the text it
  would make (_printed_size) and refuses past the limit: that text is made by one C call, which
  no deadline stops.

Every failure is one BadInputError line naming the model and the reason; `raise_exception(msg)`
(how Mistral or Gemma templates refuse a conversation) shows `msg` itself.
"""

from __future__ import annotations

import functools
import json
import operator
import re
import threading
from collections.abc import Callable, ItemsView, Iterator, KeysView, Sequence, ValuesView
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from llamadesk.app.core.errors import BadInputError, Interrupted
from llamadesk.app.core.printable import printable
from llamadesk.app.engine.interruptible import Interruptible, Stopped

TEMPLATE_KEY = "tokenizer.chat_template"
# The largest templates in use (tool-calling ones) are ~30 KB; a few MB would only slow the load.
MAX_TEMPLATE_CHARS = 512 * 1024
# A normal render takes well under a millisecond and a 1,000-message conversation a few; a
# Raspberry Pi is ~10x slower. Past this, the template is looping on purpose.
RENDER_SECONDS = 5.0
COMPILE_SECONDS = 10.0
MIN_SIZE_LIMIT = 8 * 1024 * 1024
SIZE_PER_INPUT_CHAR = 4
# All the strings and lists one render makes, together: a normal template touches each message a
# few times; a loop that keeps making 8 MB strings stops at ~128 MB, not at the machine's RAM.
TOTAL_SIZE_PER_LIMIT = 16
# Counts and widths given to filters and string methods (center(n), indent(n), batch(n), ...):
# as large as Jinja's own range() cap; real templates use single digits.
MAX_COUNT = 100_000
# Integers (`**`, `*`) stay below this many bits: enough for any arithmetic a template does.
MAX_INT_BITS = 4096
# A width of 7 digits or more in a format string ("%1000000s", "{:>9999999}").
_HUGE_WIDTH = re.compile(r"\d{7,}")
# Any number in a format string may be a width or a precision ("%999999s", "{:.99999f}").
_NUMBER = re.compile(r"\d+")
_NESTED_FIELD = re.compile(r"\{[^{}]*\{")  # "{0:>{1}}": a width taken from the arguments
# tojson's indent and separators are written once per line or item: real templates use "  " or ", ".
MAX_SEPARATOR = 100
# Filters that turn their value into text with one str() call (join, tojson and format are sized
# by _plan_growth, which knows their arguments).
_PRINTING_FILTERS = frozenset(
    {"string", "e", "escape", "forceescape", "safe", "trim", "upper", "lower", "title", "capitalize",
     "center", "indent", "wordwrap", "truncate", "replace", "striptags", "urlize", "wordcount",
     "urlencode", "xmlattr"}
)  # fmt: skip


class TemplateLimit(Exception):
    """The template went past a limit; the message says which."""


class TemplateRaised(Exception):
    """The template called raise_exception(message): it refuses this conversation."""


def _one_line(text: object, limit: int = 300) -> str:
    # The name and raise_exception's message come from the file: an ESC in them would reach the
    # terminal (set its title, clear the screen), so control characters are shown, not obeyed.
    line = " ".join(printable(str(text)).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


_SIZED = (str, list, tuple, dict)


def _size(value: object) -> int:
    # Called for every `+` and call in a render: the exact-type test first is ~4x faster.
    kind = type(value)
    if kind is str or kind is list or kind is tuple or kind is dict or isinstance(value, _SIZED):
        return len(value)  # type: ignore[arg-type]
    return 0


# What one item of a list a call returns counts for: its strings are fresh objects of ~50 bytes
# each plus their characters, and a list prints ~16 characters per item (as _plan_format sizes it).
ITEM_SIZE = 16


def _made_size(value: object) -> int:
    """What a call's result adds: a list or tuple counts its strings' characters and each item as
    ITEM_SIZE, since a call makes them fresh (`s.split()` of 8 MB made 2.7 million strings, and
    `s.partition()` a copy of the string, each counted as one item before)."""
    kind = type(value)
    if kind is list or kind is tuple:
        return ITEM_SIZE * len(value) + sum(len(item) for item in value if type(item) is str)  # type: ignore[arg-type]
    return _size(value)


# What prints each of its items: a dict view prints as dict_items([...]).
_SEQUENCES = (list, tuple, set, frozenset, KeysView, ValuesView, ItemsView)


def _printed_size(value: object, budget: int, indent: int = 0, item_size: int = ITEM_SIZE) -> int:
    """About the characters str(value) or json.dumps(value, indent=indent) writes, counted without
    making them; counting stops once past `budget` (the caller refuses then).

    Each item counts item_size, plus indent x its depth (json writes that before every item) and
    its characters for a string. Escapes can write a string's characters up to 10x (a control
    character as '\\x00'), which stays bounded; what must be caught is one string printed once per
    reference, which only a walk of the items sees. Iterative, so a deeply nested list is sized
    without recursing.
    """
    total = 0
    pending = [(value, 0)]
    while pending and total <= budget:
        item, depth = pending.pop()
        total += item_size + indent * depth
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3  # decimal digits, give or take
        elif isinstance(item, dict):
            pending.extend((part, depth + 1) for pair in item.items() for part in pair)
        elif isinstance(item, _SEQUENCES):
            pending.extend((part, depth + 1) for part in item)
        elif isinstance(item, Namespace):  # printed as <Namespace {its attributes}>
            pending.append((item._Namespace__attrs, depth + 1))  # type: ignore[attr-defined]
    return total


class _IgnoreGenerationTags(jinja2.ext.Extension):
    """Transformers' `{% generation %}` tag (it marks the assistant's part for training): its body renders as is."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> list[jinja2.nodes.Node]:
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


class _CheckedConcatGenerator(CodeGenerator):
    """Compiles the `~` operator to the environment's size-checked join instead of a plain one."""

    def visit_Concat(self, node: jinja2.nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:
            super().visit_Concat(node, frame)  # autoescape is never on here; Jinja's own path if it were
            return
        self.write("environment.checked_str_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None, sort_keys=False) -> str:
    # Transformers' tojson (not Jinja's, which escapes HTML): templates that show tools rely on it.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _raise_exception(message: object) -> None:
    raise TemplateRaised(_one_line(message))


class _BudgetedSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _CheckedConcatGenerator

    def __init__(self) -> None:
        super().__init__(
            loader=jinja2.BaseLoader(),
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[_IgnoreGenerationTags, jinja2.ext.loopcontrols],
        )
        self.size_limit = MIN_SIZE_LIMIT
        self.made = 0  # characters and items made so far in this render
        self.filters["tojson"] = _tojson
        # pprint indents nested items by their keys' widths, which no budget sizes simply; it is a
        # debugging aid no chat template uses.
        del self.filters["pprint"]
        self.filters = {name: self._checked_filter(name, f) for name, f in self.filters.items()}
        # Every `{{ value }}` passes through finalize just before str() makes its text.
        self.finalize = self.checked_output
        # Block bodies, macro and filter-block output are joined with environment.concat.
        self.concat = self.checked_join  # type: ignore[method-assign]
        del self.globals["lipsum"]  # random text of any length: no template needs it
        self.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)

    # -- size checks ---------------------------------------------------------------------------

    def start(self, size_limit: int) -> None:
        """Limits for the next render: no value over `size_limit`, all of them together under 16x that."""
        self.size_limit, self.made = size_limit, 0

    def check_size(self, value: Any, what: str, size: int | None = None) -> Any:
        size = _size(value) if size is None else size
        if size > self.size_limit:
            raise TemplateLimit(f"{what} made a value of {size:,} items (the limit is {self.size_limit:,})")
        self.made += size
        if self.made > TOTAL_SIZE_PER_LIMIT * self.size_limit:
            raise TemplateLimit(f"it made more than {TOTAL_SIZE_PER_LIMIT * self.size_limit:,} characters in all")
        return value

    def check_planned(self, size: int, what: str) -> None:
        if size > self.size_limit:
            raise TemplateLimit(f"{what} would make {size:,} characters (the limit is {self.size_limit:,})")

    def check_printed(self, values: Any, what: str) -> None:
        """Refuse before str() of `values` would make more than the limit: each is one C call."""
        printed = 0
        for value in values:
            if type(value) is not str:  # a string prints as itself, and was checked when made
                printed += _printed_size(value, self.size_limit - printed)
                self.check_printed_size(printed, what)

    def check_printed_size(self, printed: int, what: str) -> None:
        # _printed_size stops counting past the limit: the text would be at least this long
        if printed > self.size_limit:
            raise TemplateLimit(f"{what} would make more than {self.size_limit:,} characters")

    def checked_output(self, value: Any) -> Any:
        if type(value) is not str:
            self.check_printed((value,), "printing a value")
        return value

    def checked_join(self, pieces: Any, separator: str = "") -> str:
        pieces = list(pieces)
        self.check_planned(sum(map(_size, pieces)) + len(separator) * max(0, len(pieces) - 1), "joining text")
        return self.check_size(separator.join(pieces), "joining text")

    def checked_str_join(self, values: Sequence[Any]) -> str:
        self.check_printed(values, "joining text")
        return self.checked_join([str(v) for v in values])

    def _check_counts(self, what: str, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_COUNT:
                raise TemplateLimit(f"{what} was given {value:,} (counts and widths stop at {MAX_COUNT:,})")

    def _plan_format(self, fmt: Any, values: Any, marker: str, what: str) -> None:
        """A format string (`%` or `{}` style) may name one big value many times: size it first."""
        if not isinstance(fmt, str):
            return
        if _HUGE_WIDTH.search(fmt):
            raise TemplateLimit(f"{what} asks for a width of millions of characters")
        # Every placeholder may be as wide as the largest number in the string ("%999999s" x 3000).
        width = max(map(int, _NUMBER.findall(fmt)), default=0)
        if (marker == "%" and "*" in fmt) or (marker == "{" and _NESTED_FIELD.search(fmt)):
            # the width comes from the values ("%*d", "{:>{}}"): no count in them may be huge
            counts = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
            self._check_counts(what, counts, {})
            width = max([width, *map(abs, counts)])
        # Any value may fill any placeholder, sized by the text it prints (a list of one 8 MB
        # string 1,000 times prints 8 GB).
        widest = max((_printed_size(v, self.size_limit) for v in values), default=0) + width
        self.check_planned(len(fmt) + fmt.count(marker) * widest, what)

    def _plan_growth(self, name: str, subject: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
        """Refuse before it runs an operation whose result would be far larger than its inputs."""
        if name == "replace" and isinstance(subject, str) and len(args) >= 2:
            old, new = str(args[0]), str(args[1])
            count = (len(subject) + 1) if old == "" else subject.count(old)
            self.check_planned(len(subject) + count * max(0, len(new) - len(old)), "replace")
        elif name == "join" and isinstance(subject, str) and args and isinstance(args[0], list | tuple):
            # sep.join(items): an iterator was made a list by the caller, so it is sized too
            self.check_planned(sum(map(_size, args[0])) + len(subject) * len(args[0]), "join")
        elif name == "join" and isinstance(subject, list | tuple):  # the join filter: items|join(sep)
            separator = args[0] if args and isinstance(args[0], str) else kwargs.get("d", "")
            # each item is printed with str(): a list in it prints all of its own items
            self.check_printed_size(
                _printed_size(subject, self.size_limit, item_size=ITEM_SIZE + _size(separator)), "join"
            )
        elif name == "indent" and isinstance(subject, str):
            width = args[0] if args else kwargs.get("width", 4)
            prefix = len(width) if isinstance(width, str) else int(width) if isinstance(width, int) else 4
            self.check_planned(len(subject) + (subject.count("\n") + 1) * prefix, "indent")
        elif name == "wordwrap" and isinstance(subject, str):
            width = args[0] if args and isinstance(args[0], int) else kwargs.get("width", 79)
            wrap = args[2] if len(args) > 2 else kwargs.get("wrapstring", "\n")
            if isinstance(width, int) and width > 0 and isinstance(wrap, str):
                self.check_planned(len(subject) + len(subject) // width * len(wrap), "wordwrap")
        elif name == "format" and isinstance(subject, str) and "%" in subject:  # the format filter (printf)
            self._plan_format(subject, [*args, *kwargs.values()], "%", "the format filter")
        elif name in ("format", "format_map") and isinstance(subject, str):  # str.format(...)
            mapping = args[0] if name == "format_map" and args and isinstance(args[0], dict) else {}
            self._plan_format(subject, [*args, *kwargs.values(), *mapping.values()], "{", f"str.{name}")
        elif name == "expandtabs" and isinstance(subject, str):
            size = args[0] if args and isinstance(args[0], int) else kwargs.get("tabsize", 8)
            if isinstance(size, int):
                self.check_planned(len(subject) + subject.count("\t") * size, "expandtabs")
        elif name == "tojson":
            indent = args[1] if len(args) > 1 else kwargs.get("indent")
            separators = args[2] if len(args) > 2 else kwargs.get("separators")
            for option in (indent, *(separators if isinstance(separators, list | tuple) else ())):
                if isinstance(option, str) and len(option) > MAX_SEPARATOR:
                    raise TemplateLimit(f"tojson was given a separator of {len(option):,} characters")
            if isinstance(indent, int) and indent > MAX_SEPARATOR:
                raise TemplateLimit(f"tojson was given an indent of {indent:,} (real templates use 2 or 4)")
            # json writes the indent once per level before every item: an int indent of 100 on
            # 100,000 items made 2 GB in one call before.
            width = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
            between = sum(len(part) for part in separators if isinstance(part, str)) if separators else 0
            printed = _printed_size(subject, self.size_limit, indent=width, item_size=ITEM_SIZE + between)
            self.check_printed_size(printed, "tojson")

    # -- what the compiled template calls ------------------------------------------------------

    def call_binop(self, context: jinja2.runtime.Context, op: str, left: Any, right: Any) -> Any:
        if op == "+":
            # Both sides are within the limit already (every value made is checked), so the sum
            # is at most twice it: checking after is enough, and half the cost of a check before.
            return self.check_size(operator.add(left, right), "`+`")
        if op == "*":
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise TemplateLimit(f"a multiplication would pass {MAX_INT_BITS} bits")
            else:
                count = right if isinstance(left, str | list | tuple) else left
                sized = left if isinstance(left, str | list | tuple) else right
                if isinstance(count, int) and _size(sized):
                    self.check_planned(_size(sized) * max(0, count), "a repetition (`*`)")
            return self.check_size(operator.mul(left, right), "`*`")
        if op == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                if right * left.bit_length() > MAX_INT_BITS:
                    raise TemplateLimit(f"a power would pass {MAX_INT_BITS} bits")
            return operator.pow(left, right)
        if op == "%":
            if isinstance(left, str):
                values = right.values() if isinstance(right, dict) else right if isinstance(right, tuple) else (right,)
                self._plan_format(left, list(values), "%", "a % format")
                return self.check_size(operator.mod(left, right), "a % format")
            return operator.mod(left, right)
        return super().call_binop(context, op, left, right)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        # A string method: 'x'.center(n), s.replace(a, b), sep.join(items). The sandbox hands out
        # str.format wrapped (a function with __wrapped__), so look through that.
        subject = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        if isinstance(subject, str):
            name = getattr(__obj, "__name__", "")
            if name not in ("format", "format_map"):
                __self._check_counts(f"str.{name}", args, kwargs)
            if name == "join" and args and isinstance(args[0], Iterator):
                args = (list(args[0]), *args[1:])  # str.join makes a list of it anyway; now it is sized
            __self._plan_growth(name, subject, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        return __self.check_size(result, getattr(__obj, "__name__", "a call"), _made_size(result))

    def _checked_filter(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        passes = getattr(function, "jinja_pass_arg", None)
        skip = 2 if passes is not None else 1  # the context/environment, then the filtered value

        @functools.wraps(function)  # keeps jinja_pass_arg, so Jinja passes what the filter expects
        def checked(*args: Any, **kwargs: Any) -> Any:
            subject, params = args[skip - 1] if len(args) >= skip else None, args[skip:]
            if name == "join" and isinstance(subject, Iterator):  # items|map('string')|join
                subject = list(subject)  # join makes a list of it anyway; now it is sized
                args = (*args[: skip - 1], subject, *params)
            if name != "format":  # format's arguments are data; its width is in the format string
                self._check_counts(f"the {name} filter", params, kwargs)
            if name in _PRINTING_FILTERS:
                self.check_printed((subject, *params, *kwargs.values()), f"the {name} filter")
            self._plan_growth(name, subject, params, kwargs)
            result = function(*args, **kwargs)
            return self.check_size(result, f"the {name} filter", _made_size(result))

        return checked


class ChatTemplate:
    """A GGUF's chat template, compiled once; render() turns a conversation into the prompt text."""

    def __init__(self, source: object, *, model: str, bos_token: str = "", eos_token: str = "") -> None:
        """Raises BadInputError when `source` is not usable text or does not compile."""
        self.model = _one_line(model, 80)  # general.name, from the same stranger as the template
        self._bos, self._eos = bos_token, eos_token
        self._guard = Interruptible()
        # One render at a time: the limits of a render live on the environment, and interrupt()
        # stops the one in progress.
        self._rendering = threading.Lock()
        if not isinstance(source, str):
            raise BadInputError(
                f"{self.model}: {TEMPLATE_KEY} is {_kind(source)}, not text; the file is damaged, "
                "download or convert it again"
            )
        if len(source) > MAX_TEMPLATE_CHARS:
            raise BadInputError(
                f"{self.model}: its chat template is {len(source):,} characters (real ones are under "
                f"{MAX_TEMPLATE_CHARS:,}); the file is damaged or hostile, pick another model"
            )
        self._env = _BudgetedSandbox()
        self._template = self._guarded(COMPILE_SECONDS, lambda: self._env.from_string(source), "compiling it")

    def set_special_tokens(self, bos_token: str, eos_token: str) -> None:
        """The text of the model's BOS and EOS tokens, which templates write as `bos_token`/`eos_token`."""
        self._bos, self._eos = bos_token, eos_token

    def interrupt(self) -> None:
        """Stop a render in progress (from any thread): it raises Interrupted."""
        self._guard.interrupt()

    def render(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        """The prompt text for `messages`; BadInputError when the template fails or refuses them.

        Interrupted when interrupt() comes while it renders.
        """
        with self._rendering:
            return self._render(messages, add_generation_prompt)

    def _render(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool) -> str:
        conversation = [dict(m) for m in messages]
        chars = sum(_size(m.get("content")) for m in conversation)
        self._env.start(max(MIN_SIZE_LIMIT, SIZE_PER_INPUT_CHAR * chars))
        variables = {
            "messages": conversation,
            "bos_token": self._bos,
            "eos_token": self._eos,
            "add_generation_prompt": add_generation_prompt,
            "tools": None,
            "tool_choice": None,
            "functions": None,
            "function_call": None,
        }
        # Gemma and Mistral templates refuse a system message (raise_exception): say what helps.
        has_system = any(m.get("role") == "system" for m in conversation)
        hint = "leave the system prompt empty or pick another model" if has_system else ""
        render = lambda: self._collect(self._template.generate(variables))  # noqa: E731
        text = self._guarded(RENDER_SECONDS, render, "rendering", hint)
        if not text:
            raise BadInputError(
                f"{self.model}'s chat template produced no text for this conversation; pick another model"
            )
        return text

    def _collect(self, pieces: Iterator[str]) -> str:
        out: list[str] = []
        total = 0
        for piece in pieces:
            if not piece:
                continue  # a loop of empty output would otherwise pile up empty strings
            total += len(piece)
            if total > self._env.size_limit:
                raise TemplateLimit(f"its output passed {self._env.size_limit:,} characters")
            out.append(piece)
        return "".join(out)

    def _guarded(self, seconds: float, work: Callable[[], Any], doing: str, refused_hint: str = "") -> Any:
        """work() under the deadline, with every way a template fails turned into one line."""
        failed = f"{self.model}'s chat template failed while {doing}"
        try:
            return self._guard.call(seconds, work)
        except Stopped as stop:
            if stop.reason == "deadline":
                raise BadInputError(
                    f"{failed}: it ran for more than {seconds:g} s (a runaway loop); pick another model"
                ) from None
            raise Interrupted("stopped") from None
        except TemplateRaised as err:
            # The system-prompt hint only where the template's own words are about it (not "roles must alternate").
            hint = refused_hint if refused_hint and "system" in str(err).lower() else "pick another model"
            raise BadInputError(f"{self.model}'s chat template refused this conversation: {err}; {hint}") from None
        except TemplateLimit as err:
            raise BadInputError(f"{failed}: {err}; pick another model") from None
        except jinja2.TemplateSyntaxError as err:
            reason = _one_line(err.message or "a syntax error")
            raise BadInputError(f"{failed}: {reason} (line {err.lineno}); pick another model") from None
        except RecursionError:
            raise BadInputError(f"{failed}: it nests or recurses too deeply; pick another model") from None
        except MemoryError:
            raise BadInputError(f"{failed}: it ran out of memory; pick another model") from None
        except Exception as err:  # noqa: BLE001 - foreign code: whatever it raises is the template's failure
            # jinja2's UndefinedError and SecurityError, and whatever Python raises for the template's
            # own operations (TypeError, OverflowError from range(10**9), ZeroDivisionError, ...).
            reason = _one_line(err) or type(err).__name__
            raise BadInputError(f"{failed}: {type(err).__name__}: {reason}; pick another model") from None


def _kind(value: object) -> str:
    """What a GGUF metadata value is, in words (values are numbers, booleans, text or arrays)."""
    if type(value).__name__ in ("bool", "bool_"):
        return "a boolean"
    return "an array" if hasattr(value, "__len__") else "a number"
