"""The chaos suite: faults injected into real git, tmux and processes; every scenario ends in an audit."""
