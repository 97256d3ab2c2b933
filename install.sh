#!/usr/bin/env bash
# Install dead-drop-logger for the current user and have it run at login/boot.
# Run from a checkout: ./install.sh [--dry-run] [--no-service] [--import-historical]
# Safe to run again: a second run upgrades the installation in place.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: ./install.sh [options]

Installs dead-drop-logger into its own virtual environment, links the command into
~/.local/bin, creates ~/.dead-drop/logs (mode 0700) and runs the logger as a user
service: systemd on Linux, launchd on macOS.
Where no service manager is usable (a container, no user bus) it starts the logger
with `dead-drop-logger start` instead. Running it again upgrades in place. It writes
a commented example settings file (~/.config/dead-drop-logger/config.toml on Linux)
when there is none, and never overwrites one.

Options:
  --dry-run            print every action instead of doing it
  --no-service         install only; do not set up a service or start anything
  --import-historical  first log the messages already in the database (once), with
                       the settings the service uses (dead-drop-logger export):
                       days older than retention_days are left out, and said so
                       (set retention_days = 0 in the settings file to keep all)
  --uninstall          stop the logger, remove the service, the command's link
                       and the virtual environment; keep the logs and the
                       settings file
  --venv DIR           where the virtual environment goes
                       (default: <user data dir>/dead-drop-logger/venv)
  --render KIND        print the rendered service file (KIND: systemd or launchd)
                       and exit
  -h, --help           show this help

Environment:
  DEAD_DROP_PYTHON           Python 3.11+ to build the environment with (python3)
  DEAD_DROP_INSTALL_SOURCE   what pip installs (default: this checkout)
  DEAD_DROP_PIP_ARGS         extra arguments for pip install (e.g. --no-index)
  DEAD_DROP_VENV_ARGS        extra arguments for python -m venv
  DEAD_DROP_SERVICE_MANAGER  auto (default), systemd, launchd or none
  XDG_BIN_HOME               where the command is linked (default: ~/.local/bin)
USAGE
}

die() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 1
}
say() { printf '%s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NAME=dead-drop-logger
LABEL=com.dead-drop.logger
MARKER=dead-drop-logger-install.sh
DRY_RUN=0
UNINSTALL=0
SERVICE=1
IMPORT=0
RENDER=""
VENV=""

while [ "$#" -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    -n | --dry-run) DRY_RUN=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --no-service) SERVICE=0 ;;
    --import-historical) IMPORT=1 ;;
    --venv)
      [ "$#" -ge 2 ] || die "--venv needs a directory"
      VENV="$2"
      shift
      ;;
    --render)
      [ "$#" -ge 2 ] || die "--render needs systemd or launchd"
      RENDER="$2"
      shift
      ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done

[ -n "${HOME:-}" ] || die "HOME is not set"
PYTHON="${DEAD_DROP_PYTHON:-python3}"
SOURCE="${DEAD_DROP_INSTALL_SOURCE:-$HERE}"
read -r -a PIP_ARGS <<<"${DEAD_DROP_PIP_ARGS:-}"
read -r -a VENV_ARGS <<<"${DEAD_DROP_VENV_ARGS:-}"

# The user data and config dirs, as platformdirs.user_data_dir("dead-drop-logger") and
# user_config_dir name them.
case "$(uname -s)" in
  Darwin)
    DATA_DIR="$HOME/Library/Application Support/$NAME"
    CONFIG_DIR="$DATA_DIR"
    ;;
  *)
    DATA_DIR="${XDG_DATA_HOME:-$HOME/.local/share}/$NAME"
    CONFIG_DIR="${XDG_CONFIG_HOME:-$HOME/.config}/$NAME"
    ;;
esac
CONFIG_FILE="$CONFIG_DIR/config.toml"
VENV="${VENV:-$DATA_DIR/venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
BIN="$VENV/bin/$NAME"
# Where a user's own commands go (XDG; on PATH in most distributions' default profile).
BIN_DIR="${XDG_BIN_HOME:-$HOME/.local/bin}"
LINK="$BIN_DIR/$NAME"
DEAD_DROP_HOME="$HOME/.dead-drop"
LOG_DIR="$DEAD_DROP_HOME/logs"
DAEMON_LOG="$DEAD_DROP_HOME/logger.log"
PID_FILE="$DEAD_DROP_HOME/logger.pid"
UNIT_DIR="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
UNIT="$UNIT_DIR/$NAME.service"
PLIST="$HOME/Library/LaunchAgents/$LABEL.plist"

# Run a command, or only print it under --dry-run.
act() {
  if [ "$DRY_RUN" = 1 ]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# Print a service file from its template with the absolute paths filled in.
render() {
  local kind=$1 template
  case "$kind" in
    systemd) template="$HERE/packaging/systemd/$NAME.service" ;;
    launchd) template="$HERE/packaging/launchd/$LABEL.plist" ;;
    *) die "unknown service file kind: $kind (systemd or launchd)" ;;
  esac
  [ -f "$template" ] || die "missing template $template"
  "$PYTHON" - "$kind" "$template" "$BIN" "$DAEMON_LOG" "$PID_FILE" <<'PY'
import re
import sys
from xml.sax.saxutils import escape

kind, template, binary, daemon_log, pid_file = sys.argv[1:]
with open(template, encoding="utf-8") as fh:
    text = fh.read()
if kind == "launchd":
    binary, daemon_log, pid_file = escape(binary), escape(daemon_log), escape(pid_file)
else:
    if any(c in binary for c in '"\\\n'):
        sys.exit(f"install.sh: error: cannot name {binary!r} in a systemd unit")
    binary = binary.replace("%", "%%")
# Only the settings are filled in: the comments that explain the placeholders keep them.
comment = r"<!--.*?-->" if kind == "launchd" else r"^[ \t]*[#;][^\n]*"
pieces = re.split(f"({comment})", text, flags=re.S | re.M)
for index in range(0, len(pieces), 2):  # the parts between comments
    for placeholder, value in (
        ("@DEAD_DROP_LOGGER@", binary),
        ("@DAEMON_LOG@", daemon_log),
        ("@PID_FILE@", pid_file),
    ):
        pieces[index] = pieces[index].replace(placeholder, value)
sys.stdout.write("".join(pieces))
PY
}

# Render a service file into place (atomically), or say so under --dry-run.
install_file() {
  local kind=$1 dest=$2
  if [ "$DRY_RUN" = 1 ]; then
    say "+ write $dest (rendered from the $kind template)"
    return
  fi
  mkdir -p "$(dirname "$dest")"
  render "$kind" >"$dest.tmp"
  mv -f "$dest.tmp" "$dest"
  say "wrote $dest"
}

systemd_usable() {
  command -v systemctl >/dev/null 2>&1 && systemctl --user show-environment >/dev/null 2>&1
}

service_manager() {
  case "${DEAD_DROP_SERVICE_MANAGER:-auto}" in
    systemd | launchd | none) printf '%s\n' "$DEAD_DROP_SERVICE_MANAGER" ;;
    auto)
      if [ "$(uname -s)" = Darwin ] && command -v launchctl >/dev/null 2>&1; then
        echo launchd
      elif systemd_usable; then
        echo systemd
      else
        echo none
      fi
      ;;
    *) die "DEAD_DROP_SERVICE_MANAGER must be auto, systemd, launchd or none" ;;
  esac
}

check_python() {
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set DEAD_DROP_PYTHON)"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "dead-drop-logger needs Python 3.11 or newer; $PYTHON is older"
}

venv_works() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c '' >/dev/null 2>&1
}

install_package() {
  if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
    die "$VENV exists but is not a virtual environment; choose another with --venv"
  fi
  if [ -e "$VENV" ] && ! venv_works; then
    say "the environment in $VENV does not work (its Python is gone?): recreating it"
    act rm -rf "$VENV"
  fi
  if venv_works; then
    say "upgrading the installation in $VENV"
  else
    act mkdir -p "$(dirname "$VENV")"
    act "$PYTHON" -m venv ${VENV_ARGS[@]+"${VENV_ARGS[@]}"} "$VENV"
  fi
  # With the report, serve, ship, notify and encrypt extras, so that every command (and
  # every notify sink: apprise) works after install.
  act "$VENV/bin/python" -m pip install --quiet --upgrade \
    ${PIP_ARGS[@]+"${PIP_ARGS[@]}"} "${SOURCE}[report,serve,ship,notify,encrypt]"
  # How this copy was installed, for the hints the commands give (installed.py).
  if [ "$DRY_RUN" = 1 ]; then
    say "+ write $VENV/$MARKER (this checkout's path)"
  else
    printf '%s\n' "$HERE" >"$VENV/$MARKER"
  fi
}

# A commented example settings file, only when there is none: never overwrite one.
write_example_config() {
  if [ -e "$CONFIG_FILE" ]; then
    say "keeping your settings in $CONFIG_FILE"
    return
  fi
  if [ "$DRY_RUN" = 1 ]; then
    say "+ write $CONFIG_FILE (a commented example: every setting at its default or marked not set)"
    return
  fi
  mkdir -p "$CONFIG_DIR"
  chmod 700 "$CONFIG_DIR"
  (umask 077 && "$BIN" config --example >"$CONFIG_FILE.tmp")
  mv -n "$CONFIG_FILE.tmp" "$CONFIG_FILE"
  rm -f "$CONFIG_FILE.tmp"
  say "wrote an example settings file: $CONFIG_FILE"
}

import_historical() {
  # With the settings the service runs with (config.toml, DEAD_DROP_*): what it writes
  # is what the service keeps; what its retention would delete is said, not written.
  if ! act "$BIN" export; then
    warn "the historical import did not finish (see above): run '$BIN export' again later;"
    warn "nothing is written twice"
  fi
}

# Whether $LINK is the link this installer makes (to this venv's command).
link_is_ours() {
  [ -L "$LINK" ] && [ "$(readlink "$LINK")" = "$BIN" ]
}

# Put the command on the user's PATH: a symlink in $BIN_DIR, never over anything else.
link_command() {
  if link_is_ours; then
    say "the command: $LINK -> $BIN"
  elif [ -e "$LINK" ] || { [ -L "$LINK" ] && [ -e "$(readlink "$LINK")" ]; }; then
    warn "$LINK exists and is not this installation's link: left alone; the command is $BIN"
    return
  else  # nothing there, or a dangling link (a removed installation's)
    act mkdir -p "$BIN_DIR"
    act ln -sfn "$BIN" "$LINK"
    say "the command: $LINK -> $BIN"
  fi
  case ":${PATH:-}:" in
    *":$BIN_DIR:"* | *":$BIN_DIR/:"*) ;;
    *) warn "$BIN_DIR is not on your PATH: add it (export PATH=\"$BIN_DIR:\$PATH\" in ~/.profile) or run $BIN" ;;
  esac
}

# Stop a logger an earlier fallback install started with `dead-drop-logger start`.
stop_daemon() {
  if [ -x "$BIN" ] || [ "$DRY_RUN" = 1 ]; then
    act "$BIN" stop
  fi
}

# After a service manager failed to take over: the logger runs again as before, or
# install.sh says loudly that it does not.
recover_daemon() {
  warn "$1"
  if "$BIN" status >/dev/null 2>&1; then
    warn "the logger that was running keeps running ('$BIN restart' runs the installed code)"
  elif "$BIN" start; then
    warn "started the logger with '$NAME start' instead (it will not come back after a reboot)"
  else
    warn "THE LOGGER IS NOT RUNNING: start it with '$BIN start'"
  fi
  exit 1
}

start_systemd() {
  install_file systemd "$UNIT"
  act systemctl --user daemon-reload \
    || recover_daemon "systemctl --user daemon-reload failed: the service was not started"
  stop_daemon
  if systemctl --user is-active --quiet "$NAME.service" 2>/dev/null; then
    act systemctl --user restart "$NAME.service" \
      || recover_daemon "systemctl --user restart $NAME.service failed"
  else
    act systemctl --user enable --now "$NAME.service" \
      || recover_daemon "systemctl --user enable --now $NAME.service failed"
  fi
  say "running as the systemd user service $NAME.service"
  say "  check on it: systemctl --user status $NAME; journalctl --user -u $NAME"
  if [ "$(loginctl show-user "$(id -un)" -p Linger --value 2>/dev/null || true)" != yes ]; then
    say "  to start it at boot without logging in: loginctl enable-linger $(id -un)"
  fi
}

start_launchd() {
  local domain
  domain="gui/$(id -u)"
  stop_daemon
  install_file launchd "$PLIST"
  if [ "$DRY_RUN" = 1 ]; then
    say "+ launchctl bootout $domain/$LABEL (if loaded)"
  else
    launchctl bootout "$domain/$LABEL" >/dev/null 2>&1 || true
  fi
  act launchctl bootstrap "$domain" "$PLIST" \
    || recover_daemon "launchctl bootstrap $domain $PLIST failed: the agent was not started"
  say "running as the launchd agent $LABEL"
  say "  check on it: launchctl print $domain/$LABEL; tail $DAEMON_LOG"
}

start_fallback() {
  say "no usable service manager here (no launchd, no systemd user bus):"
  say "starting it with '$NAME start' instead; it will not come back after a reboot"
  act "$BIN" restart || die "THE LOGGER IS NOT RUNNING: '$BIN restart' failed (see above)"
  say "  check on it: $BIN status; tail $DAEMON_LOG"
}

do_install() {
  check_python
  local manager=none
  if [ "$SERVICE" = 1 ]; then
    manager="$(service_manager)"
  fi
  # Before anything changes: a service manager that cannot work here is refused now,
  # not after the running logger was stopped for it.
  if [ "$manager" = systemd ] && [ "$DRY_RUN" != 1 ] && ! systemd_usable; then
    die "systemd was asked for, but 'systemctl --user' does not work here (no user bus:" \
      "log in to a session, or loginctl enable-linger $(id -un)); nothing was changed and" \
      "a running logger keeps running; DEAD_DROP_SERVICE_MANAGER=none starts it without" \
      "a service"
  fi
  if [ ! -d "$DEAD_DROP_HOME" ]; then
    act mkdir -m 700 "$DEAD_DROP_HOME"
  fi
  act mkdir -p "$LOG_DIR"
  act chmod 700 "$LOG_DIR"
  install_package
  if [ "$DRY_RUN" = 1 ]; then
    say "would install $BIN (dry run: nothing was changed)"
  else
    say "installed $BIN"
  fi
  link_command
  write_example_config
  if [ "$IMPORT" = 1 ]; then
    import_historical
  fi
  if [ "$SERVICE" = 0 ]; then
    say "no service set up (--no-service): run '$BIN run' or '$BIN start' yourself"
    return
  fi
  case "$manager" in
    systemd) start_systemd ;;
    launchd) start_launchd ;;
    none) start_fallback ;;
  esac
}

do_uninstall() {
  if [ -f "$UNIT" ]; then
    if systemd_usable || [ "$DRY_RUN" = 1 ]; then
      act systemctl --user disable --now "$NAME.service" || true
    fi
    act rm -f "$UNIT"
    if systemd_usable; then
      act systemctl --user daemon-reload
    fi
  fi
  if [ -f "$PLIST" ]; then
    if [ "$DRY_RUN" = 1 ]; then
      say "+ launchctl bootout gui/$(id -u)/$LABEL"
    else
      launchctl bootout "gui/$(id -u)/$LABEL" >/dev/null 2>&1 || true
    fi
    act rm -f "$PLIST"
  fi
  if [ -x "$BIN" ]; then
    act "$BIN" stop
  fi
  if link_is_ours; then
    act rm -f "$LINK"
  elif [ -e "$LINK" ] || [ -L "$LINK" ]; then
    say "left $LINK alone: it is not this installation's link"
  fi
  if [ -f "$VENV/pyvenv.cfg" ]; then  # only ever delete a virtual environment
    act rm -rf "$VENV"
    if [ "$VENV" = "$DATA_DIR/venv" ]; then
      act rmdir "$DATA_DIR" 2>/dev/null || true
    fi
  fi
  say "uninstalled; your logs are kept in $LOG_DIR"
  if [ -e "$CONFIG_FILE" ]; then
    say "your settings are kept in $CONFIG_FILE"
  fi
}

if [ -n "$RENDER" ]; then
  render "$RENDER"
elif [ "$UNINSTALL" = 1 ]; then
  do_uninstall
else
  do_install
fi
