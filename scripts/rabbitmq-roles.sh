#!/usr/bin/env bash
# Least-privilege RabbitMQ users for one p2p network (namespace), on a broker this machine can rabbitmqctl
# (RABBITMQCTL names the command, default rabbitmqctl; e.g. "docker exec CONTAINER rabbitmqctl").
#
#   scripts/rabbitmq-roles.sh NAMESPACE [--vhost VHOST] [--remove] [--print] [--hashes]
#
# Creates (or updates) four users with permissions on VHOST (default "/") limited to NAMESPACE's objects:
#   NAMESPACE-superpeer  declares the shared topology, consumes N.rpc and its own N.superpeer.* queue,
#                        publishes to N.network, N.dead-letter and (replies) the default exchange
#   NAMESPACE-peer       configures only its own N.peer.* queue, publishes to N.events, N.dead-letter and (RPC
#                        requests) the default exchange, reads only N.network and N.peer.* (exclusive queues:
#                        another connection's is refused with 405 RESOURCE_LOCKED)
#   NAMESPACE-client     publishes requests to the default exchange only (replies come by direct reply-to,
#                        which needs no permission); configures and reads nothing
#   NAMESPACE-operator   everything on NAMESPACE's objects, and the management UI (tag "management")
# Passwords come from RABBITMQ_SUPERPEER_PASSWORD, RABBITMQ_PEER_PASSWORD, RABBITMQ_CLIENT_PASSWORD, RABBITMQ_OPERATOR_PASSWORD;
# unset, they are change-me-<role> (as in deploy/rabbitmq/definitions.json): change them.
#
# --remove deletes the four users (objects in the namespace stay). --print only prints
# "user<TAB>configure<TAB>write<TAB>read" lines, touching nothing (tests compare them with the definitions).
# --hashes only prints "user<TAB>password_hash" lines: RabbitMQ's salted SHA-256 of each role's password (the
# variables above), for the "password_hash" fields of a definitions file (docker compose loads one at start).
set -euo pipefail

usage() {
  echo "usage: $0 NAMESPACE [--vhost VHOST] [--remove] [--print] [--hashes]" >&2
  exit 2
}

namespace=""
vhost="/"
mode="apply"
while [ $# -gt 0 ]; do
  case "$1" in
    --vhost) [ $# -ge 2 ] || usage; vhost="$2"; shift 2 ;;
    --remove) mode="remove"; shift ;;
    --print) mode="print"; shift ;;
    --hashes) mode="hashes"; shift ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) [ -z "$namespace" ] || usage; namespace="$1"; shift ;;
  esac
done
# The same rule as P2P_NAMESPACE: only "." needs escaping in a regex.
[[ "$namespace" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ ]] || usage
n="${namespace//./\\.}"

# role configure write read
permissions() {
  printf '%s\t%s\t%s\t%s\n' \
    superpeer "^${n}\\.(events|network|dead-letter|rpc|watches|watchers|superpeer\\..+|superpeer-watches\\..+)\$" \
    "^(${n}\\.(network|dead-letter|watchers|superpeer\\..+|superpeer-watches\\..+)|amq\\.default)\$" \
    "^${n}\\.(events|rpc|dead-letter|watches|superpeer\\..+|superpeer-watches\\..+)\$"
  printf '%s\t%s\t%s\t%s\n' \
    peer "^${n}\\.(peer|watch)\\..+\$" \
    "^(${n}\\.(events|dead-letter|watches|peer\\..+|watch\\..+)|amq\\.default)\$" \
    "^${n}\\.(network|watchers|peer\\..+|watch\\..+)\$"
  printf '%s\t%s\t%s\t%s\n' \
    client "^${n}\\.watch\\..+\$" \
    "^(${n}\\.(watches|watch\\..+)|amq\\.default)\$" \
    "^${n}\\.(watchers|watch\\..+)\$"
  printf '%s\t%s\t%s\t%s\n' operator "^${n}\\..*\$" "^(${n}\\..*|amq\\.default)\$" "^${n}\\..*\$"
}

ctl() {
  # shellcheck disable=SC2086 # RABBITMQCTL is a command line: split into words on purpose
  ${RABBITMQCTL:-rabbitmqctl} --quiet "$@" </dev/null
}

password_for() {
  case "$1" in
    superpeer) echo "${RABBITMQ_SUPERPEER_PASSWORD:-change-me-superpeer}" ;;
    peer) echo "${RABBITMQ_PEER_PASSWORD:-change-me-peer}" ;;
    client) echo "${RABBITMQ_CLIENT_PASSWORD:-change-me-client}" ;;
    operator) echo "${RABBITMQ_OPERATOR_PASSWORD:-change-me-operator}" ;;
  esac
}

# rabbit_password_hashing_sha256: base64(salt ++ sha256(salt ++ password)), a random 4-byte salt.
password_hash() {
  local salt digest
  salt=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
  digest=$({ printf '%b' "$(sed 's/../\\x&/g' <<<"$salt")"; printf '%s' "$1"; } | sha256sum | cut -c1-64)
  printf '%b' "$(sed 's/../\\x&/g' <<<"${salt}${digest}")" | base64 -w0
}

case "$mode" in
  hashes)
    for role in superpeer peer client operator; do
      printf '%s-%s\t%s\n' "$namespace" "$role" "$(password_hash "$(password_for "$role")")"
    done
    ;;
  print)
    permissions | while IFS=$'\t' read -r role configure write read; do
      printf '%s-%s\t%s\t%s\t%s\n' "$namespace" "$role" "$configure" "$write" "$read"
    done
    ;;
  remove)
    for role in superpeer peer client operator; do
      ctl delete_user "${namespace}-${role}" >/dev/null 2>&1 || true
    done
    echo "removed the users of namespace ${namespace}"
    ;;
  apply)
    permissions | while IFS=$'\t' read -r role configure write read; do
      user="${namespace}-${role}"
      password="$(password_for "$role")"
      if ctl list_users | cut -f1 | grep -qx -- "$user"; then
        ctl change_password "$user" "$password" >/dev/null
      else
        ctl add_user "$user" "$password" >/dev/null
      fi
      if [ "$role" = operator ]; then
        ctl set_user_tags "$user" management >/dev/null
      else
        ctl set_user_tags "$user" >/dev/null
      fi
      ctl set_permissions -p "$vhost" "$user" "$configure" "$write" "$read" >/dev/null
      echo "user ${user} on vhost ${vhost}: configure ${configure}  write ${write}  read ${read}"
    done
    ;;
esac
