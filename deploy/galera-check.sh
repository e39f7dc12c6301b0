#!/bin/sh
# HAProxy health check of one MariaDB Galera node (deploy/haproxy.cfg, `external-check`): up
# (exit 0) only when the node is Synced (wsrep_local_state 4), ready (wsrep_ready ON) and in the
# primary component. A node outside the quorum refuses queries (1047, "WSREP has not yet
# prepared node for application use"); a joiner, or a donor busy with a state transfer, is not
# Synced. A node that does not answer within 2 s is down.
# HAProxy runs it as: galera-check.sh PROXY_ADDRESS PROXY_PORT SERVER_ADDRESS SERVER_PORT
# Credentials: galera-check.cnf beside this script, e.g.
#   [client]
#   user=haproxy_check
#   password=...
# for a user that needs no privilege: CREATE USER 'haproxy_check'@'<haproxy host>' IDENTIFIED BY '...';
cnf="$(dirname "$0")/galera-check.cnf"
synced="$(mariadb --defaults-extra-file="$cnf" --protocol=TCP --host="$3" --port="$4" \
    --connect-timeout=2 --batch --skip-column-names --execute="
    SELECT COUNT(*) FROM information_schema.GLOBAL_STATUS
    WHERE (VARIABLE_NAME, VARIABLE_VALUE) IN
        (('WSREP_LOCAL_STATE', '4'), ('WSREP_READY', 'ON'), ('WSREP_CLUSTER_STATUS', 'Primary'))" \
    2>/dev/null)" || exit 1
[ "$synced" = 3 ]
