#!/usr/bin/env bash
# Set up your own agents with mailslot: one tmux session, one pane per agent (each in its own git
# worktree), and a window for the delivery daemon. Edit the `agent` lines at the bottom.
#
#   MAILSLOT_ROOT=~/work/myproject-mail PROJECT=~/work/myproject examples/tmux-layout.sh
#
# Needs bash, tmux, git and mailslot on PATH. Set TMUX_SOCKET=/tmp/try.sock to try it on a scratch
# tmux server; ATTACH=0 to not attach at the end.
set -euo pipefail

SESSION=${SESSION:-agents}
PROJECT=${PROJECT:-$HOME/work/myproject}
export MAILSLOT_ROOT=${MAILSLOT_ROOT:-$HOME/work/myproject-mail}

tmux() { command tmux ${TMUX_SOCKET:+-S "$TMUX_SOCKET"} "$@"; }
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }   # quote for the shell in a pane

# 1. The mailroom: a git repository of Markdown mail (idempotent). The hooks make mail that
#    arrives by `git pull`/merge tap its recipients too (useful once the mailroom has a remote).
mailslot init "$MAILSLOT_ROOT"
mailslot hooks install

if tmux has-session -t "=$SESSION" 2>/dev/null; then
  echo "tmux session $SESSION exists already; attach with: tmux attach -t $SESSION" >&2
  exit 1
fi

# 2. One pane per agent. In each pane's shell we type what you would type by hand: who this pane
#    is (MAILSLOT_AGENT, so send/inbox/reply need no --from), `mailslot register` (it records this
#    pane, $TMUX_PANE, on this tmux server), then the agent program itself. The shell stays below
#    the agent; mailslot never types while the shell is in the foreground.
agent() { # agent NAME PROGRAM WORKTREE ROLE...
  local name=$1 program=$2 dir=$3 pane
  shift 3
  mkdir -p "$dir"   # your worktree, e.g.: git -C "$PROJECT" worktree add "$dir" -b "$name"
  if tmux has-session -t "=$SESSION" 2>/dev/null; then
    pane=$(tmux split-window -t "=$SESSION:agents" -h -c "$dir" -P -F '#{pane_id}')
  else
    pane=$(tmux new-session -d -s "$SESSION" -n agents -c "$dir" -x 240 -y 60 -P -F '#{pane_id}')
  fi
  tmux select-pane -t "$pane" -T "$name"
  tmux send-keys -t "$pane" -l "export MAILSLOT_AGENT=$name MAILSLOT_ROOT=$(q "$MAILSLOT_ROOT")"
  tmux send-keys -t "$pane" Enter
  tmux send-keys -t "$pane" -l "mailslot register $name --program $program --role $(q "$*") && $program"
  tmux send-keys -t "$pane" Enter
}

#     name      program  worktree                    role
agent lead      claude   "$PROJECT"                  "plans the work, reviews, closes threads"
agent backend   codex    "$PROJECT-backend"          "API and database"
agent frontend  claude   "$PROJECT-frontend"         "web UI"
tmux select-layout -t "=$SESSION:agents" even-horizontal

# 3. The delivery daemon (one per mailroom per host): taps an agent's pane when its mail arrives,
#    commits mail written by hand. Its log is the window's screen.
tmux new-window -d -t "=$SESSION:" -n mail "MAILSLOT_ROOT=$(q "$MAILSLOT_ROOT") mailslot watch"

# 4. Tell each agent how to use mailslot: paste examples/agent-prompt.md into its CLAUDE.md or
#    AGENTS.md. Then give lead a task, or send mail yourself, e.g.:
#      mailslot send backend --from lead -s "Add a /login endpoint" -m "POST /login, returns a token"
#    and watch with `mailslot status`, `mailslot threads` and `git -C "$MAILSLOT_ROOT" log`.
if [ "${ATTACH:-1}" = 1 ] && [ -t 1 ]; then
  if [ -n "${TMUX:-}" ] && [ -z "${TMUX_SOCKET:-}" ]; then
    tmux switch-client -t "=$SESSION"
  else
    tmux attach -t "=$SESSION"
  fi
fi
