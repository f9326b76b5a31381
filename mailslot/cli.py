"""The command line: a thin skin over the core. Each command parses, calls one function, renders.

Only this module imports click. Heavy modules (git adapter, tmux, watcher) are imported inside the
commands that need them, so ``mailslot inbox`` starts fast.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from mailslot import mailroom, store
from mailslot.errors import MailslotError, NotFound, StorageError
from mailslot.mailroom import Mailroom
from mailslot.message import PRIORITIES, Message, compose

_ENVIRONMENT = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EMFILE}


class _Group(click.Group):
    """Turns every :class:`MailslotError` into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MailslotError as e:
            click.echo(f"mailslot: {e}", err=True)
            ctx.exit(e.exit_code)
        except OSError as e:  # the machine refused (disk full, read-only): not a bug, say so plainly
            if e.errno not in _ENVIRONMENT:
                raise
            where = f": {e.filename}" if e.filename else ""
            click.echo(f"mailslot: {e.strerror}{where}", err=True)
            ctx.exit(StorageError.exit_code)


def _fail(message: str) -> NoReturn:
    raise click.UsageError(message)


def _room(ctx: click.Context) -> Mailroom:
    root, is_default = mailroom.resolve_root(ctx.obj.get("root"))
    if is_default and not (root / mailroom.MARKER).exists():
        from mailslot import vcs

        vcs.init_repo(root)
        click.echo(f"mailslot: created the default mailroom at {root}", err=True)
    return mailroom.open_mailroom(root)


def _me(room: Mailroom, explicit: str | None = None) -> str:
    name, _ = mailroom.whoami(room, explicit)
    return name


def _body(message: str | None) -> str:
    if message is not None:
        return message
    if sys.stdin is None or sys.stdin.isatty():
        _fail("give the body with --message TEXT or on standard input")
    return sys.stdin.read()


def _emit(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, separators=(",", ":")))


def _age(date: str) -> str:
    try:
        seconds = (datetime.now(UTC) - datetime.fromisoformat(date)).total_seconds()
    except ValueError:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 0)}s"


def _size(n: int) -> str:
    return f"{n}B" if n < 1000 else f"{n / 1000:.1f}k"


def _fields(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"id": msg.id, "thread": msg.thread, "from": msg.sender, "to": list(msg.to)}
    if msg.cc:
        out["cc"] = list(msg.cc)
    out.update(subject=msg.subject, date=msg.date)
    for key, value in (("in-reply-to", msg.in_reply_to), ("priority", msg.priority), ("task", msg.task)):
        if value:
            out[key] = value
    return out


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    help="The mailroom (default: $MAILSLOT_ROOT, else a per-user one).",
)
@click.version_option(package_name="mailslot")
@click.pass_context
def cli(ctx: click.Context, root: str | None) -> None:
    """Mail between coding agents: Markdown files in a git mailroom, with safe taps into tmux panes.

    \b
    Example:
      MAILSLOT_AGENT=alice mailslot send bob --subject "Review #12" --message "Please look"
    """
    ctx.ensure_object(dict)
    ctx.obj["root"] = root


@cli.command()
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.pass_context
def init(ctx: click.Context, path: str | None) -> None:
    """Create a mailroom (a git repository) and print its path. Idempotent.

    \b
    Example:
      mailslot init ~/work/myproject-mail
    """
    from mailslot import vcs

    root = Path(path).expanduser().resolve() if path else mailroom.resolve_root(ctx.obj.get("root"))[0]
    room = vcs.init_repo(root)
    click.echo(str(room.root))


@cli.command()
@click.argument("name")
@click.option(
    "--program",
    type=click.Choice(mailroom.PROGRAMS),
    help="The agent program (default: detected, else generic).",
)
@click.option("--pane", "target", help="A tmux target to tap (default: the calling pane, $TMUX_PANE).")
@click.option("--socket", "sock", help="The tmux server socket of --pane (default: the caller's server).")
@click.option("--no-pane", is_flag=True, help="Register without a pane: mail is stored, never tapped.")
@click.option("--role", help="A short description, shown by `mailslot agents`.")
@click.option("--worktree", type=click.Path(file_okay=False), help="The agent's working directory.")
@click.pass_context
def register(
    ctx: click.Context,
    name: str,
    program: str | None,
    target: str | None,
    sock: str | None,
    no_pane: bool,
    role: str | None,
    worktree: str | None,
) -> None:
    """Register (or update) agent NAME, recording the tmux pane to tap.

    Inside tmux it records the calling pane ($TMUX_PANE) on the calling server ($TMUX).

    \b
    Example:
      mailslot register backend --program claude --role "API and database"
    """
    from mailslot import registry

    agent = registry.register(
        _room(ctx),
        name,
        program=program,
        target=target,
        sock=sock,
        no_pane=no_pane,
        role=role,
        worktree=worktree,
    )
    where = f"pane {agent.pane} on {agent.socket}" if agent.pane else "no pane (mail is stored, not tapped)"
    click.echo(f"registered {agent.name} ({agent.program}, {where})")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per agent.")
@click.pass_context
def agents(ctx: click.Context, as_json: bool) -> None:
    """List registered agents.

    \b
    Example:
      mailslot agents --json
    """
    for a in mailroom.iter_agents(_room(ctx)):
        if as_json:
            _emit(
                {
                    "name": a.name,
                    "program": a.program,
                    "host": a.host,
                    "pane": a.pane,
                    "socket": a.socket,
                    "role": a.role,
                    "worktree": a.worktree,
                }
            )
        else:
            click.echo(" ".join(filter(None, [a.name, a.program, a.pane or "-", a.host, a.role or ""])))


@cli.command()
@click.option("--from", "sender", help="Check this name instead (as other commands would use it).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def whoami(ctx: click.Context, sender: str | None, as_json: bool) -> None:
    """Print the calling agent's name (--from, $MAILSLOT_AGENT, or the registered pane).

    \b
    Example:
      MAILSLOT_AGENT=alice mailslot whoami
    """
    name, how = mailroom.whoami(_room(ctx), sender)
    _emit({"name": name, "via": how}) if as_json else click.echo(name)


@cli.command()
@click.argument("to", nargs=-1, required=True)
@click.option("--subject", "-s", required=True, help="One line, at most 200 characters.")
@click.option("--message", "-m", help="The body (Markdown); default: standard input.")
@click.option("--cc", multiple=True, help="Also deliver to this agent (repeatable).")
@click.option("--thread", "-t", help="Continue this thread (default: start a new one).")
@click.option("--priority", type=click.Choice(PRIORITIES), default="normal", show_default=True)
@click.option("--task", help="An issue-tracker id this mail is about.")
@click.option("--from", "sender", help="Send as this agent (default: $MAILSLOT_AGENT or your pane's).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def send(
    ctx: click.Context,
    to: tuple[str, ...],
    subject: str,
    message: str | None,
    cc: tuple[str, ...],
    thread: str | None,
    priority: str,
    task: str | None,
    sender: str | None,
    as_json: bool,
) -> None:
    """Send a message to one or more agents; print its id and thread.

    \b
    Example:
      mailslot send bob carol -s "Schema change" -m "users.email is now unique"
    """
    room = _room(ctx)
    msg = compose(
        sender=_me(room, sender),
        to=list(to),
        cc=list(cc),
        subject=subject,
        body=_body(message),
        thread=thread,
        priority=priority,
        task=task,
    )
    store.deliver(room, msg)
    _emit({"id": msg.id, "thread": msg.thread, "to": list(msg.recipients)}) if as_json else click.echo(
        f"{msg.id} {msg.thread}"
    )


@cli.command()
@click.argument("message_id")
@click.option("--message", "-m", help="The body; default: standard input.")
@click.option("--all", "reply_all", is_flag=True, help="Reply to the sender and every other recipient.")
@click.option("--priority", type=click.Choice(PRIORITIES))
@click.option("--from", "sender", help="Reply as this agent.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def reply(
    ctx: click.Context,
    message_id: str,
    message: str | None,
    reply_all: bool,
    priority: str | None,
    sender: str | None,
    as_json: bool,
) -> None:
    """Reply to a message, in its thread; print the new id and thread.

    \b
    Example:
      mailslot reply 20261121T202745123Z-k3fxa2 -m "Done, see commit abc123"
    """
    room = _room(ctx)
    from mailslot import threads  # only thread commands pay for it

    msg = threads.reply(
        room, message_id, _me(room, sender), _body(message), reply_all=reply_all, priority=priority
    )
    _emit({"id": msg.id, "thread": msg.thread, "to": list(msg.recipients)}) if as_json else click.echo(
        f"{msg.id} {msg.thread}"
    )


@cli.command()
@click.option("--agent", "-a", help="Whose inbox (default: yours).")
@click.option("--all", "include_seen", is_flag=True, help="Include mail already seen.")
@click.option("--limit", "-n", default=50, show_default=True, help="List at most this many (0: no limit).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def inbox(ctx: click.Context, agent: str | None, include_seen: bool, limit: int, as_json: bool) -> None:
    """List unseen mail, oldest first, one line each (id, from, age, size, subject); mark it seen.

    Says how many more are waiting when there are over --limit.

    \b
    Example:
      mailslot inbox && mailslot read <id>
    """
    room = _room(ctx)
    who = agent or _me(room)
    page = store.inbox_page(room, who, include_seen=include_seen, limit=limit or None)
    found, problems = page.found, page.problems
    for p in problems:
        what = "quarantined" if not p.path.exists() else "skipped (may still be being written)"
        click.echo(f"mailslot: {what} {room.rel(p.path)}: {p.reason}", err=True)
    for item in found:
        m = item.message
        if as_json:
            _emit({**_fields(m), "seen": item.seen, "size": len(m.body)})
        else:
            flag = " !" if m.urgent else ""
            click.echo(f"{m.id} {m.sender} {_age(m.date)} {_size(len(m.body))}{flag} {m.subject}")
    if page.more:
        if as_json:
            _emit({"more": page.more})
        else:
            click.echo(f"(+{page.more} more; run mailslot inbox again)")
    if not found and not as_json:
        click.echo(f"no {'mail' if include_seen else 'new mail'} for {who}", err=True)


@cli.command()
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def read(ctx: click.Context, message_id: str, as_json: bool) -> None:
    """Print a whole message (front matter and body) and mark it seen.

    \b
    Example:
      mailslot read 20261121T202745123Z-k3fxa2
    """
    room = _room(ctx)
    try:
        reader: str | None = _me(room)
    except NotFound:
        reader = None
    item = store.read(room, message_id, reader)
    if as_json:
        _emit({**_fields(item.message), "body": item.message.body, "path": room.rel(item.path)})
    else:
        click.echo(item.message.raw.decode("utf-8"), nl=False)


@cli.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def thread(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Print every message of a thread (by thread id or any message id), oldest first.

    \b
    Example:
      mailslot thread t-k3fva2q7
    """
    room = _room(ctx)
    from mailslot import threads

    tid, msgs, closed = threads.messages(room, ref)
    if as_json:
        _emit({"thread": tid, "closed": closed, "messages": [{**_fields(m), "body": m.body} for m in msgs]})
        return
    click.echo(f"thread {tid} ({len(msgs)} messages, {'closed' if closed else 'open'})")
    for m in msgs:
        click.echo(f"--- {m.id} {m.sender} -> {','.join(m.recipients)} {m.date}\n{m.subject}")
        click.echo(m.body.strip("\n"))


@cli.command(name="threads")
@click.option("--closed", is_flag=True, help="List closed (archived) threads instead of open ones.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def threads_cmd(ctx: click.Context, closed: bool, as_json: bool) -> None:
    """List threads, newest activity first: id, messages, unseen, participants, subject.

    \b
    Example:
      mailslot threads --closed
    """
    from mailslot import threads

    for t in threads.list_threads(_room(ctx), closed=closed):
        if as_json:
            _emit(
                {
                    "thread": t.thread,
                    "subject": t.subject,
                    "participants": list(t.participants),
                    "messages": t.count,
                    "unseen": t.unseen,
                    "last": t.last,
                    "closed": t.closed,
                }
            )
        else:
            click.echo(f"{t.thread} {t.count} msgs {t.unseen} unseen {','.join(t.participants)} {t.subject}")


@cli.command()
@click.argument("ref")
@click.option("--message", "-m", "note", help="A closing note, archived with the thread.")
@click.option("--from", "sender", help="Close as this agent.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def close(ctx: click.Context, ref: str, note: str | None, sender: str | None, as_json: bool) -> None:
    """Close a thread (by thread id or message id): move all its mail to the archive. Idempotent.

    \b
    Example:
      mailslot close t-k3fva2q7 -m "Merged in #42"
    """
    room = _room(ctx)
    try:
        closer = _me(room, sender)
    except NotFound:  # no identity at all: a human closing by hand
        if note:
            raise
        closer = "mailslot"
    from mailslot import threads

    done = threads.close(room, ref, closer, note)
    if as_json:
        _emit({"thread": done.thread, "moved": done.moved, "already": done.already})
    elif done.already:
        click.echo(f"{done.thread} was already closed")
    else:
        click.echo(f"closed {done.thread} ({done.moved} files archived)")


@cli.command()
@click.option(
    "--fix",
    is_flag=True,
    help="Quarantine invalid files into rejected/, remove tmp/ files older than 36 h, commit stray files.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def fsck(ctx: click.Context, fix: bool, as_json: bool) -> None:
    """Validate every message and agent card; exit 1 if any is invalid (unless --fix).

    \b
    Example:
      mailslot fsck --fix
    """
    room = _room(ctx)
    problems = store.fsck(room, fix=fix)
    for p in problems:
        if as_json:
            _emit({"path": room.rel(p.path), "reason": p.reason, "quarantined": fix})
        else:
            click.echo(f"{'quarantined ' if fix else ''}{room.rel(p.path)}: {p.reason}")
    if problems and not fix:
        ctx.exit(1)
    if not problems and not as_json:
        click.echo("ok", err=True)


def main() -> None:
    """The console script: :func:`run`, then exit at once (``os._exit`` after flushing the output).

    Tearing down the interpreter's modules costs ~13 ms and mailslot has nothing to clean up at exit
    (no atexit handlers; files are closed, thread pools shut down, by the code that opened them)."""
    code = run()
    for stream in (sys.stdout, sys.stderr):  # click.echo flushes; this covers any other write
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or a full disk: the output did not get out
            code = code or 1
    os._exit(code)


def run(args: list[str] | None = None) -> int:
    """Run one command line and return its exit code. It answers first and commits afterwards, in a
    forked child, so agents never wait for git; ``MAILSLOT_SYNC=1`` commits before returning."""
    if not os.environ.get("MAILSLOT_SYNC"):
        store.defer_commits()
    try:
        cli(args, prog_name="mailslot")
        code = 0
    except SystemExit as e:
        code = _exit_code(e.code)
    finally:
        store.commit_deferred()
    return code


def _exit_code(code: object) -> int:
    """What ``sys.exit(code)`` would make of ``code`` (a message is printed, and means 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _engine_notifier() -> Any:
    from mailslot.tapper import TmuxNotifier

    return TmuxNotifier()


@cli.command()
@click.option("--rescan", default=30.0, show_default=True, help="Seconds between safety-net rescans.")
@click.pass_context
def watch(ctx: click.Context, rescan: float) -> None:
    """Run the delivery daemon: tap agents when mail arrives, commit files written by hand.

    One per mailroom per host; logs one line per event to stderr; stops on SIGINT/SIGTERM.

    \b
    Example:
      mailslot watch 2>> ~/mailslot-watch.log &
    """
    from mailslot import tmux
    from mailslot.daemon import Daemon

    store.defer_commits(False)  # the daemon commits as it goes
    daemon = Daemon(_room(ctx), _engine_notifier(), rescan=rescan)
    daemon.install_signals()
    tmux.use_control()  # a long-lived process: one persistent tmux client per server
    try:
        daemon.serve()
    finally:
        tmux.use_control(False)


@cli.command()
@click.option("--agent", "-a", "only", multiple=True, help="Only these agents (repeatable).")
@click.option("--hook", help="Set by git hook trampolines: log to .git/mailslot/hooks.log.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def deliver(ctx: click.Context, only: tuple[str, ...], hook: str | None, as_json: bool) -> None:
    """One delivery pass: commit stray mail, quarantine bad files, tap agents that need it.

    Shares the tap ledger with a running daemon, so the two never tap the same mail twice.

    \b
    Example:
      mailslot deliver --json
    """
    from mailslot import delivery

    room = _room(ctx)
    for r in delivery.deliver(room, _engine_notifier(), list(only) or None, hook=hook):
        outcome = r.outcome.result if r.outcome else "-"
        if as_json:
            _emit({"agent": r.agent, "unseen": r.unseen, "decision": r.decision, "tap": outcome})
        elif r.outcome or r.unseen:
            click.echo(f"{r.agent} {r.unseen} unseen, {r.decision}, tap: {outcome}")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Every agent: pane, detected state, unseen mail, last tap and its outcome, taps left this hour.

    \b
    Example:
      mailslot status
    """
    from mailslot import delivery

    for s in delivery.status(_room(ctx), _engine_notifier()):
        if as_json:
            _emit(s)
        else:
            last = f"last tap {s['last_tap']} {s['last_result']}" if s["last_tap"] else "never tapped"
            click.echo(
                f"{s['agent']} {s['pane'] or '-'} {s['state']} {s['unseen']} unseen, {last}, "
                f"{s['taps_left']} taps left"
            )


@cli.group()
def hooks() -> None:
    """Git hooks that make mail arriving by git (pull, merge, commit) tap its recipients.

    \b
    Example:
      mailslot hooks install && git pull
    """


@hooks.command("install")
@click.pass_context
def hooks_install(ctx: click.Context) -> None:
    """Enable the hooks in this mailroom (sets core.hooksPath); print where they are.

    \b
    Example:
      mailslot hooks install
    """
    from mailslot import hooks_install as hi

    click.echo(str(hi.install(_room(ctx))))


@hooks.command("uninstall")
@click.pass_context
def hooks_uninstall(ctx: click.Context) -> None:
    """Disable the hooks in this mailroom.

    \b
    Example:
      mailslot hooks uninstall
    """
    from mailslot import hooks_install as hi

    hi.uninstall(_room(ctx))
