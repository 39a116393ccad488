/*
 * cli_commands.h - the table of `cutover` commands, in one place.
 *
 * Adding a command is one line here plus one file src/cli/cmd_<name>.c that
 * defines `int co_cli_<name>(int argc, char **argv, co_cli *ctx)`: cli.h
 * turns each line into that prototype and main.c into a dispatch entry and
 * a line of `cutover --help`.  Keep the list in the order the help should
 * show it.
 *
 * CO_CLI_COMMAND(name, "one-line summary for cutover --help")
 */
CO_CLI_COMMAND(task, "create, read, list, claim, release and renew tasks")
CO_CLI_COMMAND(swarm, "register, read, list and remove swarms")
CO_CLI_COMMAND(watch, "stream record changes as NDJSON, one event per line")
CO_CLI_COMMAND(flags, "show, set and explain the routing flags")
CO_CLI_COMMAND(stage, "move every operation to a rollout stage (go/no-go gated)")
CO_CLI_COMMAND(rollout, "walk the stages on its own: soak, analyse, advance or roll back")
CO_CLI_COMMAND(complete, "finish: etcd only, git no longer written (all checks must pass)")
CO_CLI_COMMAND(cancel, "give up: back to git by the safe path, the outbox drained to git")
CO_CLI_COMMAND(rollback, "pull the kill switch: every operation to git")
CO_CLI_COMMAND(resume, "lift the kill switch")
CO_CLI_COMMAND(status, "stage, modes, kill switch, outbox depth, store health")
CO_CLI_COMMAND(migrate, "backfill git<->etcd, follow legacy commits, import the task board")
CO_CLI_COMMAND(reconcile, "diff both stores, record the run, trip the kill switch on failure")
CO_CLI_COMMAND(report, "show a reconciliation run: text, JSON, Markdown or HTML")
CO_CLI_COMMAND(outbox, "adopt a dead router's outbox: drain what it owes from its state dir")
CO_CLI_COMMAND(audit, "list the audit trail: flag changes, gate decisions, trips, resumes")
CO_CLI_COMMAND(serve, "serve the operations over HTTP/JSON, with metrics and admin")
CO_CLI_COMMAND(demo, "the whole migration on a sample: stages, reconcile, rollback, report")
CO_CLI_COMMAND(drill, "a game day on a scratch stack: inject an etcd fault, time the trip, count losses")
