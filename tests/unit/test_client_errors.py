"""A failed dump load is told by the mariadb client's own error lines, never by a statement it
echoed: a dump's rows (password hashes, credential blobs) reach no error, log or journal."""

from __future__ import annotations

from runner.drivers.database import CLIENT_ERROR_CHARACTERS, CLIENT_ERROR_LINES, client_errors

ECHOED = (
    "--------------\nINSERT INTO `password` VALUES (1,'u1','$6$rounds=10000$s3cret-hash')\n--------------\n"
)


def test_the_clients_error_is_kept_and_the_statement_it_echoed_is_not() -> None:
    told = client_errors(ECHOED + "ERROR 1114 (HY000) at line 31: The table 'password' is full\n")
    assert told == "ERROR 1114 (HY000) at line 31: The table '...' is full"
    assert "s3cret" not in told


def test_without_an_error_line_nothing_of_the_output_is_told() -> None:
    told = client_errors(ECHOED)
    assert "s3cret" not in told
    assert "no ERROR line from the client" in told


def test_what_an_error_quotes_of_the_dump_is_masked_and_gunzips_error_is_kept() -> None:
    told = client_errors(
        "gzip: stdin: unexpected end of file\n"
        "ERROR 1064 (42000) at line 9: You have an error in your SQL syntax; check the manual that "
        "corresponds to your MariaDB server version for the right syntax to use near "
        "'$2b$12$s3cretHashOfSixtyCharactersXXXXXXXXXXXXXXXXXXXXXXXXXX'),(2,' at line 1\n"
        "ERROR 1062 (23000) at line 12: Duplicate entry 's3cret' for key 'PRIMARY'\n"
    )
    assert "s3cret" not in told
    assert told.splitlines() == [
        "gzip: stdin: unexpected end of file",
        "ERROR 1064 (42000) at line 9: You have an error in your SQL syntax; check the manual that "
        "corresponds to your MariaDB server version for the right syntax to use near '...' at line 1",
        "ERROR 1062 (23000) at line 12: Duplicate entry '...'",
    ]


def test_error_lines_are_cut_short_and_only_the_last_few_kept() -> None:
    errors = [f"ERROR 1064 (42000) at line {n}: {'y' * 1000} near 'x'" for n in range(CLIENT_ERROR_LINES + 3)]
    told = client_errors("\n".join(errors)).splitlines()
    assert len(told) == CLIENT_ERROR_LINES
    assert all(len(line) == CLIENT_ERROR_CHARACTERS for line in told)
    assert told[-1].startswith(f"ERROR 1064 (42000) at line {CLIENT_ERROR_LINES + 2}:")
