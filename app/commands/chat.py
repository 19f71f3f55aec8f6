"""`llamadesk chat`: stream a reply to stdout, or talk in a simple REPL; go on with a stored conversation.

With --continue or --conversation ID the chat goes on where the app (or an earlier `chat --save`)
left it: the store is shared, and so is the prompt cache on disk, so a long conversation's next
reply starts after decoding only its new tokens.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from llamadesk.app.chat.context_fit import FittedPrompt, build_messages, fit_context
from llamadesk.app.chat.store import Conversation, ConversationSettings
from llamadesk.app.chat.stored_chat import StoredChat
from llamadesk.app.chat.turn_lock import TurnTaken
from llamadesk.app.commands.options import (
    add_load_options,
    add_lora_option,
    add_model_option,
    load_settings,
    lora_settings,
)
from llamadesk.app.commands.signal_wake import signals_wake
from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError, Interrupted, LlamadeskError
from llamadesk.app.core.printable import printable
from llamadesk.app.engine.types import ChatMessage, GenerationStats, OneReply, Sampling, TextPiece
from llamadesk.app.settings.chat_defaults import (
    DEFAULT_REPEAT_PENALTY,
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
)

EXAMPLES = """examples:
  llamadesk chat -m smollm2 --temperature 0 "What is the capital of France?"
  echo "Write a haiku about tea" | llamadesk chat --stats
  llamadesk chat -m ./my-model.Q4_K_M.gguf --system "You answer in French."   (interactive)
  llamadesk chat -m smollm2 --lora ./my-lora.gguf:0.8 "Summarize: ..."   (a fine-tune's LoRA adapter)
  llamadesk chat --save "Plan a week in Lisbon"      (stored: the app lists it, --continue goes on)
  llamadesk chat --continue "And the week after?"    (the most recent conversation, app's or CLI's)
  llamadesk chat --list; llamadesk chat --conversation 12   (interactive, in conversation 12)
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "chat",
        help="chat with a model (one prompt, piped text, or interactive)",
        description=(
            "Stream a model's reply to PROMPT. Without PROMPT, reads piped stdin; on a terminal, starts a chat."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompt", nargs="*", help="what to ask (joined with spaces)")
    add_model_option(parser)
    # None: the stored conversation's own setting when one is continued, else config.json's (a new
    # conversation starts as in the app), else the default shown.
    parser.set_defaults(model=None)
    parser.add_argument(
        "--system",
        help=f'system prompt (default: config.json\'s, else "{DEFAULT_SYSTEM_PROMPT}"; "" leaves it to the '
        "chat template)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        help=f"0 is greedy and reproducible (default: config.json's, else {DEFAULT_TEMPERATURE})",
    )
    parser.add_argument(
        "--top-p", type=float, help=f"nucleus sampling threshold (default: config.json's, else {DEFAULT_TOP_P})"
    )
    parser.add_argument(
        "--repeat-penalty",
        type=float,
        help=f"penalty for repeating recent tokens, 1 is none (default: config.json's, else {DEFAULT_REPEAT_PENALTY})",
    )
    parser.add_argument("--seed", type=int, help="random seed for sampling")
    parser.add_argument(
        "--max-tokens", type=int, help="stop the reply after this many tokens (default: config.json's, else 1024)"
    )
    parser.add_argument("--stats", action="store_true", help="print speed and context use to stderr after each reply")
    parser.add_argument(
        "--prompt-lookup",
        action="store_true",
        help="greedy replies that quote the prompt (edits, corrections): guess the quoted tokens and check "
        "several per step: the same reply, faster where it copies long runs; needs --temperature 0 --repeat-penalty 1",
    )
    add_lora_option(parser)
    stored = parser.add_argument_group("stored conversations (shared with the app)")
    which = stored.add_mutually_exclusive_group()
    which.add_argument(
        "-c",
        "--continue",
        dest="continue_last",
        action="store_true",
        help="go on with the most recently active conversation; its settings apply unless a flag says otherwise",
    )
    which.add_argument("--conversation", type=int, metavar="ID", help="go on with conversation ID (see --list)")
    which.add_argument("--save", action="store_true", help="store this chat as a new conversation")
    which.add_argument("--list", action="store_true", help="list the stored conversations (ID, last active, title)")
    stored.add_argument(
        "--no-prompt-cache",
        action="store_true",
        help="neither read nor write the conversation's KV cache on disk (config.json: prompt_cache_mb)",
    )
    add_load_options(parser, ctx_default="the model's, capped by memory; for one PROMPT not stored: enough for it")
    parser.set_defaults(handler=run)


@contextlib.contextmanager
def ctrl_c_stops(engine) -> Iterator[list[bool]]:
    """While a reply streams, Ctrl-C stops it (cleanly, mid-decode) instead of raising."""
    pressed: list[bool] = []

    def on_sigint(_signum, _frame):
        pressed.append(True)
        engine.request_stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with signals_wake(engine.request_stop):  # mid-decode, not after it (a long prompt's step)
            yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def format_stats(stats: GenerationStats, restored: int = 0) -> str:
    from_disk = f", {restored} from the prompt cache" if restored else ""
    # Stopped before it: the time shown would be the stop's, not a first token's.
    first = f"first token {stats.time_to_first_token * 1000:.0f} ms" if stats.generated_tokens else "no first token"
    return (
        f"[{stats.generated_tokens} tokens, {stats.generated_tokens_per_second:.1f} tok/s; "
        f"prompt {stats.prompt_tokens} tokens ({stats.cached_prompt_tokens} cached{from_disk}), "
        f"{stats.prompt_tokens_per_second:.1f} tok/s; {first}; "
        f"context {stats.context_tokens}/{stats.n_ctx}; {stats.stop_reason}]"
    )


def stream_reply(
    engine,
    messages: list[ChatMessage],
    sampling: Sampling,
    show_stats: bool,
    restored: int = 0,
    parts: list[str] | None = None,
    grew: Callable[[list[str]], None] | None = None,
) -> tuple[str, bool]:
    """Print the reply as it streams; return its text and whether Ctrl-C stopped it.

    Each piece printed is also appended to `parts` (when given): a caller that SIGTERM or SIGHUP
    stops mid-reply (cli.Terminated, raised out of here) still has what was said. `grew` is told
    the pieces so far after each one (a stored chat saves them as they come)."""
    parts = [] if parts is None else parts
    with ctrl_c_stops(engine) as pressed:
        for event in engine.stream_chat(messages, sampling):
            if isinstance(event, TextPiece):
                parts.append(event.text)
                sys.stdout.write(event.text)
                sys.stdout.flush()
                if grew is not None:
                    grew(parts)
            else:
                sys.stdout.write("\n")
                sys.stdout.flush()
                if show_stats:
                    print(format_stats(event.stats, restored), file=sys.stderr)
                if event.stats.stop_reason == "context":  # cut short: without --stats nothing said so
                    print(
                        f"llamadesk: note: the reply stopped where the context ({event.stats.n_ctx} tokens) is full; "
                        "a larger --ctx gives it room",
                        file=sys.stderr,
                    )
    return "".join(parts), bool(pressed)


# The flag that sets each conversation setting (to name in a message about a stored one).
SETTING_FLAGS = {
    "model": "-m",
    "system_prompt": "--system",
    "temperature": "--temperature",
    "top_p": "--top-p",
    "repeat_penalty": "--repeat-penalty",
    "max_tokens": "--max-tokens",
    "context_length": "--ctx",
    "adapters": "--lora",
}


def stored_model(spec: str) -> str:
    """What a conversation stores for -m: a library or starter name as given, a file as an
    absolute path (`-m ./my.gguf` stored as given was another file, or none, from another folder)."""
    from llamadesk.app.library.catalog import resolve_library_name

    path = Path(spec).expanduser()
    if not path.exists() or resolve_library_name(spec) is not None:  # a name wins, as in resolve_model
        return spec
    return os.path.abspath(path)


def flag_settings(args: argparse.Namespace) -> dict[str, object]:
    """The conversation settings the flags give (None where a flag is not given)."""
    return {
        "model": None if args.model is None else stored_model(args.model),
        "system_prompt": args.system,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "repeat_penalty": args.repeat_penalty,
        "max_tokens": args.max_tokens,
        "context_length": args.ctx,
        "adapters": lora_settings(args.lora),
    }


def conversation_settings(args: argparse.Namespace, stored: ConversationSettings | None) -> ConversationSettings:
    """The flags over a continued conversation's own settings (or over config.json's defaults for a
    new conversation, as the app starts one; a bad config.json stops the command with its line)."""
    from llamadesk.app.settings.user_config import load_config

    base = stored or load_config().conversation_settings("chat")
    flags = flag_settings(args)
    return replace(base, **{name: value for name, value in flags.items() if value is not None})


def refuse_unusable_settings(conversation: Conversation, args: argparse.Namespace) -> None:
    """BadInputError for a stored setting that cannot be used (a damaged or hand-edited row), unless
    a flag replaces it for this chat: as a bad config.json value stops the CLI."""
    given = {name for name, value in flag_settings(args).items() if value is not None}
    for name, problem in conversation.setting_problems:
        if name not in given:
            raise BadInputError(
                f"conversation {conversation.id}'s stored settings: {problem}; give {SETTING_FLAGS[name]} "
                "for this chat, or set it again in the app"
            )
    if "adapters" not in given:
        for adapter, _ in conversation.settings.adapters:
            if not Path(adapter).is_file():
                raise BadInputError(
                    f"conversation {conversation.id} applies the LoRA adapter {adapter}, which is gone; give "
                    "--lora FILE for this chat, --lora none to go on without it, or set it again in the app"
                )


def open_store_to_read(refuse_unwritable: bool = False):
    """The conversation store, for commands that read what it holds (--list, --continue, --conversation).

    `refuse_unwritable`: a store that cannot be written is one line and exit 1, before any model is
    loaded (a one-shot command would answer and then lose the reply: minutes of work on a Pi).

    A store that cannot be written (a read-only folder, a full disk) is read into memory and its
    conversations listed and continued all the same. When the file cannot be read at all (another
    program holds it locked, the disk fails), the store goes on in memory, empty: "conversation 2
    does not exist" or an empty list would be false. So that is one line and exit 1 here, naming
    the cause (waiting helps only a lock), instead of the store's notice.
    """
    from llamadesk.app.chat.store import Store, print_notice

    notices: list[str] = []
    store = Store(on_notice=notices.append)
    if store.file_unread:
        store.close()
        if not store.path.is_file():  # waiting would not help: say what is in the way
            what = "a folder" if store.path.is_dir() else "something that is not a file"
            raise LlamadeskError(
                f"{what} is in the place of the conversation store {store.path}; move it elsewhere "
                "(a new store is then started there)"
            )
        reason = store.not_saved or f"the conversation store {store.path} cannot be read"
        if store.locked_out:
            raise LlamadeskError(f"{reason}; its conversations cannot be read now: try again once it is free")
        raise LlamadeskError(f"{reason}; its conversations cannot be read either")
    if refuse_unwritable and store.not_saved is not None:
        store.close()
        wait = "; try again once it is free" if store.locked_out else ""
        raise LlamadeskError(f"{store.not_saved}; nothing was asked, since the reply could not be kept{wait}")
    store.on_notice = print_notice
    for line in notices:
        print_notice(line)
    return store


def list_conversations() -> int:
    store = open_store_to_read()
    try:
        for conversation in store.conversations():
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(conversation.updated))
            # A title is the first line of whatever was piped in: its control characters shown, not obeyed.
            print(f"{conversation.id:>6}  {when}  {printable(conversation.title)}")
    finally:
        store.close()
    return 0


def open_stored_chat(args: argparse.Namespace, one_shot: bool = False) -> StoredChat:
    """The conversation --continue/--conversation names (or a new one for --save), with its prompt cache."""
    from llamadesk.app.chat.prompt_cache import PromptCache, budget_from_megabytes, default_cache_folder
    from llamadesk.app.chat.store import Store
    from llamadesk.app.chat.stored_chat import find_conversation
    from llamadesk.app.settings.user_config import load_config

    cache = None
    if not args.no_prompt_cache:
        # A bad config.json stops here, as the README promises: going on with the default budget
        # wrote KV caches for a user whose file says prompt_cache_mb 0.
        megabytes = load_config().prompt_cache_mb
        folder = default_cache_folder()
        cache = PromptCache(folder, budget_from_megabytes(megabytes, folder))
    if args.save and not one_shot:
        store = Store()  # the REPL goes on in memory when the file cannot be written; it says so
    else:
        store = open_store_to_read(refuse_unwritable=one_shot)
    if one_shot:
        # A store that stops saving partway is told at the end, with what it kept (run()): its
        # notice, "what you write now is kept until you quit", is not true of a command that ends.
        store.on_notice = lambda _line: None
    try:
        if args.save:
            return StoredChat(store, None, conversation_settings(args, None), cache)
        conversation = find_conversation(store, None if args.continue_last else args.conversation)
        refuse_unusable_settings(conversation, args)
        chat = StoredChat(store, conversation, conversation_settings(args, conversation.settings), cache)
        if one_shot:
            # Another llamadesk taking a turn there is said now, before minutes of loading a model
            # on a Pi; the REPL claims each turn as it is taken (take_turn).
            chat.claim_turn()
    except BaseException:
        store.close()
        if cache is not None:
            cache.close()
        raise
    return chat


# More than any model's context holds (about two million tokens): `chat < /dev/zero` read on until
# the kernel killed the process, at 21 GB, deaf to SIGTERM meanwhile.
MAX_PIPED_PROMPT_BYTES = 8 * 1024**2


def _piped_prompt() -> str:
    """The prompt piped on stdin, read to its end or to the limit, whichever is first."""
    raw = sys.stdin.buffer.read(MAX_PIPED_PROMPT_BYTES + 1)
    if len(raw) > MAX_PIPED_PROMPT_BYTES:
        raise BadInputError(
            f"the piped prompt is larger than {format_bytes(MAX_PIPED_PROMPT_BYTES)}, more than any model's "
            "context holds; pipe less"
        )
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadInputError("the piped prompt is not UTF-8 text; convert it to UTF-8 first (e.g. with iconv)") from None


def run(args: argparse.Namespace) -> int:
    from llamadesk.app.core.value_ranges import MAX_TOKENS, REPEAT_PENALTY, SEED, TEMPERATURE, TOP_P
    from llamadesk.app.engine.llama_engine import Engine  # loads llama.cpp: only when a model is needed
    from llamadesk.app.engine.token_sampler import is_plain_greedy
    from llamadesk.app.library.catalog import resolve_model

    if args.list:
        if args.prompt:  # `chat --list what is this` listed and dropped the question without a word
            raise BadInputError("--list lists the stored conversations and answers nothing: leave out the PROMPT")
        return list_conversations()
    # The same ranges as config.json and the app's settings form.
    for flag, value, value_range in (
        ("--temperature", args.temperature, TEMPERATURE),
        ("--top-p", args.top_p, TOP_P),
        ("--repeat-penalty", args.repeat_penalty, REPEAT_PENALTY),
        ("--max-tokens", args.max_tokens, MAX_TOKENS),
        ("--seed", args.seed, SEED),
    ):
        if value is not None:
            value_range.check(value, flag)
    prompt = check_utf8(" ".join(args.prompt), "the prompt")
    if args.system is not None:
        check_utf8(args.system, "--system")  # stored with the conversation: SQLite takes UTF-8 only
    for flag, value in (("-m", args.model), *(("--lora", v) for v in args.lora or ())):
        if value is not None:  # a file name llama.cpp could not open either
            check_utf8(value, flag, "rename the file to a UTF-8 name (convmv converts names)")
    interactive = not prompt and sys.stdin.isatty()
    if not prompt and not interactive:
        prompt = _piped_prompt()
        if not prompt:
            raise BadInputError("nothing to answer: give a PROMPT or pipe text on stdin")

    stored = args.continue_last or args.conversation is not None or args.save
    chat = open_stored_chat(args, one_shot=not interactive) if stored else None
    try:
        settings = chat.settings if chat is not None else conversation_settings(args, None)
        path = resolve_model(settings.model)
        sampling = Sampling(
            temperature=settings.temperature,
            top_p=settings.top_p,
            repeat_penalty=settings.repeat_penalty,
            seed=args.seed,
            max_tokens=settings.max_tokens,
            prompt_lookup=args.prompt_lookup,
        )
        if args.prompt_lookup and not is_plain_greedy(sampling):
            # Only a greedy pick can be checked against a guess; anything else would be ignored silently.
            raise BadInputError(
                "--prompt-lookup checks guesses against greedy decoding: give --temperature 0 --repeat-penalty 1 too"
            )
        load = load_settings(args)
        if settings.context_length:  # --ctx, or the continued conversation's own context
            load = replace(load, n_ctx=settings.context_length)
        if settings.adapters:  # --lora, or the adapters the continued conversation was using
            load = replace(load, lora=settings.adapters)
        one_reply = None
        if chat is None and not interactive:  # this reply is all the context will ever hold
            question: list[ChatMessage] = [{"role": "user", "content": prompt}]
            history = build_messages(settings.system_prompt, question)
            one_reply = OneReply(tuple(history), settings.max_tokens) if settings.max_tokens else None
        with Engine.load(path, load, one_reply) as engine:
            if interactive:
                if chat is not None:
                    print(f"Conversation {describe(chat)}.", file=sys.stderr)
                return repl(engine, settings.system_prompt, sampling, args.stats, chat)
            if chat is None:
                _, stopped = stream_reply(engine, history, sampling, args.stats)
            else:
                try:
                    _, stopped, _ = take_turn(engine, settings.system_prompt, chat, prompt, sampling, args.stats, 0)
                except BaseException:
                    if chat.store.not_saved is not None:  # said before what stopped the turn
                        print(f"llamadesk: {chat.what_the_file_kept()}", file=sys.stderr)
                    raise
                if chat.store.not_saved is not None:
                    # The store stopped saving partway: what it did not keep was in memory only,
                    # and this command ends now.
                    raise LlamadeskError(chat.what_the_file_kept())
            if stopped:
                raise Interrupted("stopped")
            return 0
    finally:
        if chat is not None:
            chat.close()


def describe(chat: StoredChat) -> str:
    if chat.conversation is None:
        return "new (stored when you send the first message)"
    return f"{chat.conversation.id}: {printable(chat.conversation.title)}"


def fit_turns(
    engine, system_prompt: str, turns: list[ChatMessage], sampling: Sampling, memory_start: int
) -> FittedPrompt:
    """What the model sees of the chat (chat.context_fit, as in the app); says when old turns were dropped."""
    with ctrl_c_stops(engine) as pressed:  # a template that renders for long stops on Ctrl-C too

        def count_tokens(messages: list[ChatMessage]) -> int:
            # Tokenizing a long paste takes seconds, and llama.cpp's tokenizer never looks at the
            # stop: Ctrl-C is heard between counts (it was lost, and the reply went on to the end).
            if pressed:
                raise Interrupted("stopped")
            return len(engine.chat_prompt_tokens(messages))

        fitted = fit_context(system_prompt, turns, count_tokens, engine.n_ctx, sampling.max_tokens, memory_start)
        if pressed:
            raise Interrupted("stopped")
    if fitted.memory_start > memory_start:
        print(f"(the model no longer sees the {fitted.memory_start} oldest messages)", file=sys.stderr)
    if fitted.cut_note is not None:
        print(f"({fitted.cut_note})", file=sys.stderr)
    return fitted


def check_utf8(text: str, what: str, advice: str = "give it as UTF-8 (iconv converts it)") -> str:
    """`text` as given, or BadInputError when it holds bytes that are not UTF-8 (argv and input()
    keep them as lone surrogates, which neither SQLite nor llama.cpp can take)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInputError(f"{what} holds bytes that are not UTF-8; {advice}") from None
    return text


def take_turn(
    engine,
    system_prompt: str,
    chat: StoredChat,
    question: str,
    sampling: Sampling,
    show_stats: bool,
    memory_start: int,
) -> tuple[str, bool, int]:
    """One question and its reply in a stored conversation: fitted into the context, answered after
    restoring what the prompt cache holds, both stored. Returns the reply, whether Ctrl-C stopped it,
    and where the model's memory now starts. The conversation's turn is held throughout (TurnTaken
    at once when another llamadesk is taking one there)."""
    chat.claim_turn()
    try:
        turns = chat.turns()
        # Where the previous reply's memory began (stored: a one-shot --continue starts from there too).
        memory_start = max(memory_start, chat.memory_start())
        message = chat.add_question(question)
        turns.append({"role": "user", "content": question})
        try:
            fitted = fit_turns(engine, system_prompt, turns, sampling, memory_start)
            restored = chat.before_reply(engine, engine.chat_prompt_tokens(fitted.messages))
            chat.start_reply()
        except (BadInputError, Interrupted, KeyboardInterrupt):
            # Refused, or stopped (Ctrl-C, SIGTERM, SIGHUP) before a word of the reply: a question
            # stored without its reply would be sent again with every next one.
            chat.take_back(message)
            raise
        said: list[str] = []
        try:
            reply, stopped = stream_reply(
                engine, fitted.messages, sampling, show_stats, restored, said, chat.reply_grew
            )
        except BadInputError:
            # Refused before a word of the reply (PromptTooLong: a system prompt longer than the context).
            chat.take_back(message)
            raise
        except (KeyboardInterrupt, OSError):
            # SIGTERM or SIGHUP (cli.Terminated) mid-reply, or stdout gone (`| head`, a full disk):
            # what was said is stored, marked interrupted, as Ctrl-C stores it; the engine stopped
            # mid-decode, so no KV cache is kept. Nothing said: the question is taken back.
            with contextlib.suppress(LlamadeskError):  # a store that fails now must not hide the signal
                if said:
                    chat.end_reply(engine, "".join(said), stopped=True, keep_cache=False)
                else:
                    chat.take_back(message)
            raise
        if stopped and not reply:
            # Ctrl-C while the prompt was read: the question would be read again with every next one
            # (the reason to press Ctrl-C was that reading it took too long).
            chat.take_back(message)
            return reply, stopped, memory_start
        chat.end_reply(engine, reply, stopped)
        chat.remember_memory_start(fitted.memory_start, message)
        return reply, stopped, fitted.memory_start
    finally:
        chat.release_turn()


def repl(engine, system_prompt: str, sampling: Sampling, show_stats: bool, chat: StoredChat | None = None) -> int:
    """An interactive chat. When it outgrows the context, the oldest turns are dropped from what the
    model sees (chat.context_fit, as in the app), so a long chat keeps answering instead of failing.
    With `chat`, every turn is stored in that conversation and its KV cache kept on disk."""
    with contextlib.suppress(ImportError):  # not on every platform; input() works without it
        # Line editing, and no 4,095-character limit: the terminal's own line mode cut a longer
        # line without a word. A paste (readline's bracketed paste) arrives as one message.
        import readline

        # CPython turns readline's bracketed paste off; on, a pasted text with line breaks is one message.
        readline.parse_and_bind("set enable-bracketed-paste on")

    print(f"Chatting with {engine.summary.name}. Ctrl-C stops a reply; Ctrl-D or /bye leaves.", file=sys.stderr)
    turns: list[ChatMessage] = []
    memory_start = 0
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            print(file=sys.stderr)
            return 0
        except KeyboardInterrupt:
            print(file=sys.stderr)
            continue
        if line.strip() in ("/bye", "/exit", "/quit"):
            return 0
        if not line.strip():
            continue
        try:
            check_utf8(line, "the message")
        except BadInputError as err:
            print(f"llamadesk: {err}", file=sys.stderr)
            continue
        try:
            if chat is not None:
                _, _, memory_start = take_turn(engine, system_prompt, chat, line, sampling, show_stats, memory_start)
                continue
            turns.append({"role": "user", "content": line})
            fitted = fit_turns(engine, system_prompt, turns, sampling, memory_start)
            memory_start = fitted.memory_start
            reply, stopped = stream_reply(engine, fitted.messages, sampling, show_stats)
            if stopped and not reply:
                # Ctrl-C while the message was read: kept, it would be read again before every next one.
                turns.pop()
                print("(stopped before the reply began: that message is dropped)", file=sys.stderr)
                continue
        except (BadInputError, Interrupted, TurnTaken) as err:
            # The model's chat template refused or failed on this turn (or Ctrl-C stopped it while
            # it rendered), or another llamadesk is taking a turn in this conversation: nothing was
            # said, so the turn is taken back and the chat goes on.
            if chat is None:
                turns.pop()
            print(f"llamadesk: {err}", file=sys.stderr)
            continue
        turns.append({"role": "assistant", "content": reply})
