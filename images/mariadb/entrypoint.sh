#!/bin/sh
# Initialises an empty data directory once, then runs mariadbd in the
# foreground. Passwords come from files (*_FILE) or the environment and are
# fed to the client on standard input, never on a command line.
set -eu

datadir=/var/lib/mysql
secret() { # secret NAME: the value of $NAME_FILE's file, else of $NAME
    file=$(eval "printf '%s' \"\${${1}_FILE:-}\"")
    if [ -n "$file" ]; then cat "$file"; else eval "printf '%s' \"\${${1}:-}\""; fi
}
sql_quote() { printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/''/g"; }

# The marker is written last: a data directory without it is a half-done
# initialisation (the container was stopped in the middle) and is redone.
marker="$datadir/.keystone-upgrade-initialised"
if [ ! -f "$marker" ]; then
    find "$datadir" -mindepth 1 -delete
    root_password=$(secret MARIADB_ROOT_PASSWORD)
    user_password=$(secret MARIADB_PASSWORD)
    database=${MARIADB_DATABASE:-}
    user=${MARIADB_USER:-}
    if [ -z "$root_password" ]; then
        echo "mariadb-entrypoint: MARIADB_ROOT_PASSWORD or MARIADB_ROOT_PASSWORD_FILE is required" >&2
        exit 64
    fi
    chown mysql:mysql "$datadir"
    mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
        --auth-root-authentication-method=normal >/dev/null
    init_socket=/run/mysqld/init.sock
    mariadbd --user=mysql --datadir="$datadir" --skip-networking \
        --socket="$init_socket" --pid-file=/run/mysqld/init.pid &
    init_pid=$!
    tries=0
    until mariadb-admin --socket="$init_socket" ping >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 120 ]; then echo "mariadb-entrypoint: init server did not start" >&2; exit 1; fi
        sleep 0.5
    done
    {
        host=$(hostname)
        echo "DROP USER IF EXISTS ''@'localhost', ''@'$host', 'root'@'$host', 'root'@'::1';"
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$(sql_quote "$root_password")';"
        echo "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';"
        echo "ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '$(sql_quote "$root_password")';"
        echo "GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
        # For the container's health check only: no privileges, and 'localhost'
        # matches only the unix socket inside the container.
        echo "CREATE USER IF NOT EXISTS 'healthcheck'@'localhost';"
        if [ -n "$database" ]; then echo "CREATE DATABASE \`$database\`;"; fi
        if [ -n "$user" ]; then
            echo "CREATE USER '$user'@'%' IDENTIFIED BY '$(sql_quote "$user_password")';"
            if [ -n "$database" ]; then echo "GRANT ALL ON \`$database\`.* TO '$user'@'%';"; fi
        fi
        echo "FLUSH PRIVILEGES;"
    } | mariadb --socket="$init_socket" -uroot
    kill "$init_pid"
    wait "$init_pid" || true
    touch "$marker"
fi

set -- --user=mysql --datadir="$datadir" \
    --bind-address="$MARIADB_BIND" --port="$MARIADB_PORT" \
    --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid \
    --max-connections="${MARIADB_MAX_CONNECTIONS:-500}" \
    --skip-name-resolve "$@"
if [ "${MARIADB_LOG_BIN:-0}" = "1" ]; then
    # Binary logging as a replicated production database has it: expand
    # migrations that create triggers then need SUPER or
    # log_bin_trust_function_creators.
    set -- "$@" --log-bin=mysql-bin --server-id=1 --binlog-format=ROW
fi
exec mariadbd "$@"
