#!/bin/sh
# Healthy once the real server (not the init one) answers on its socket.
exec mariadb-admin --user=healthcheck --socket=/run/mysqld/mysqld.sock ping >/dev/null 2>&1
