/*
 * cmd_migrate.c - `cutover migrate`: backfill, follow, and legacy imports.
 *
 *   cutover migrate [--direction git-to-etcd|etcd-to-git] [--dry-run] [--follow]
 *                   [--from-board FILE] [--from-swarms DIR] [--skip-bad-rows]
 *
 * Without --from-*: a backfill in the given direction (migrate.h), then, with
 * --follow, the legacy-commit follower until SIGINT/SIGTERM.  With
 * --from-board and/or --from-swarms: an import into the git store only (run
 * the backfill afterwards to copy it to etcd).  Progress goes to stderr, as
 * a bar on a terminal and as plain lines otherwise; the summary, with the
 * verification count, to stdout (JSON with --json).
 */
#include "cli.h"

#include "../../migrate/board.h"
#include "../../migrate/migrate.h"
#include "../core/error.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define U_MIGRATE                                                                    \
	"cutover migrate [--direction git-to-etcd|etcd-to-git] [--dry-run] [--follow]\n" \
	"               [--from-board FILE] [--from-swarms DIR] [--skip-bad-rows]"

static const char h_migrate[] =
	"usage: " U_MIGRATE "\n\n"
	"Backfill: copy every record that is missing or older (by rev) on the target,\n"
	"in batches, and leave the others alone, so a second run writes nothing.\n"
	"Progress is checkpointed in the state dir: an interrupted run resumes.\n"
	"Records with the same rev but different content are reported, not touched.\n\n"
	"  --direction D     git-to-etcd (default) or etcd-to-git (rollback)\n"
	"  --dry-run         report what would be written; write nothing\n"
	"  --follow          after the backfill, mirror every git commit not made by\n"
	"                    cutover into etcd (rev bumped past both stores and written\n"
	"                    back to git), until SIGINT/SIGTERM; resumes after restart\n"
	"  --from-board F    import a legacy markdown task board into git\n"
	"  --from-swarms D   import swarm registrations (*.json, *.yaml) into git\n"
	"  --skip-bad-rows   import what can be mapped even if some rows cannot\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

typedef struct ui {
	int tty;
	int last_pct;
	const char *last_phase;
} ui;

static void on_progress(void *ud, const char *phase, size_t done, size_t total)
{
	ui *u = ud;
	int pct = total ? (int)(done * 100 / total) : 100, i;

	if (u->tty) {
		char bar[41];

		for (i = 0; i < 40; i++)
			bar[i] = i < pct * 40 / 100 ? '#' : ' ';
		bar[40] = '\0';
		fprintf(stderr, "\r%-6s [%s] %3d%% %zu/%zu", phase, bar, pct, done, total);
		if (done >= total)
			fputc('\n', stderr);
		fflush(stderr);
		return;
	}
	/* Plain lines: one per 10% step and phase, so logs stay short. */
	if (u->last_phase != phase || pct / 10 != u->last_pct / 10 || done >= total) {
		if (u->last_phase == phase && pct == u->last_pct)
			return;
		fprintf(stderr, "migrate: %s %zu/%zu (%d%%)\n", phase, done, total, pct);
		u->last_pct = pct;
		u->last_phase = phase;
	}
}

static void on_log(void *ud, const char *line)
{
	(void)ud;
	printf("%s\n", line);
	fflush(stdout);
}

static void print_stats(co_cli *ctx, const char *what, const co_migrate_stats *s, int dry)
{
	if (ctx->json) {
		printf("{\"operation\":\"%s\",\"dry_run\":%s,\"source\":%zu,\"target\":%zu,"
		       "\"to_write\":%zu,\"written\":%zu,\"equal\":%zu,\"target_newer\":%zu,"
		       "\"conflicting\":%zu,\"resumed\":%zu,\"unreadable\":%zu,\"batches\":%zu,"
		       "\"verified_equal\":%zu,\"verified_total\":%zu}\n",
		       what, dry ? "true" : "false", s->source, s->target, s->to_write,
		       s->written, s->equal, s->target_newer, s->conflicting, s->resumed,
		       s->unreadable, s->batches, s->verified_equal, s->verified_total);
	} else {
		if (s->resumed_after[0])
			printf("%s: resumed after %s (%zu records already done)\n", what,
			       s->resumed_after, s->resumed);
		printf("%s: %zu source records, %zu on the target; %s %zu, %zu equal, "
		       "%zu newer on the target, %zu conflicting (same rev, different "
		       "content), %zu unreadable; %zu batch(es)\n",
		       what, s->source, s->target, dry ? "would write" : "wrote",
		       dry ? s->to_write : s->written, s->equal, s->target_newer,
		       s->conflicting, s->unreadable, s->batches);
		if (s->verified_total || !strstr(what, "import"))
			printf("verified: %zu/%zu records equal on both sides\n",
			       s->verified_equal, s->verified_total);
	}
	fflush(stdout);
}

static int read_file(char **out, size_t *len, const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return co_error_set(CO_EINVAL, "%s: %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    (buf = malloc((size_t)n + 1)) == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(buf);
		return co_error_set(CO_EIO, "%s: cannot read", path);
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = (size_t)n;
	return 0;
}

static int import_board(co_cli *ctx, const co_migrate_opts *mo, const char *path,
			int skip_bad)
{
	co_board *b = NULL;
	co_migrate_stats st;
	char *text = NULL;
	size_t len = 0, i;
	int error;

	if ((error = read_file(&text, &len, path)) < 0)
		goto done;
	if ((error = co_board_parse(&b, text, len)) < 0) {
		error = co_cli_error_prefix(error, path);
		goto done;
	}
	for (i = 0; i < b->n_bad; i++)
		fprintf(stderr, "%s:%zu: %s\n", path, b->bad[i].line, b->bad[i].reason);
	if (b->n_bad && !skip_bad) {
		error = co_error_set(CO_EINVAL, "%s: %zu row(s) could not be mapped; nothing "
						"imported (--skip-bad-rows imports the other %zu)",
				     path, b->n_bad, b->tasks.n);
		goto done;
	}
	if ((error = co_migrate_import(&st, mo, &b->tasks)) < 0)
		goto done;
	print_stats(ctx, "import board", &st, mo->dry_run);
done:
	co_board_free(b);
	free(text);
	return error;
}

static int import_swarms(co_cli *ctx, const co_migrate_opts *mo, const char *dir,
			 int skip_bad)
{
	co_record_list l = {NULL, 0, 0};
	co_strv bad = {NULL, 0};
	co_migrate_stats st;
	size_t i;
	int error;

	if ((error = co_migrate_read_swarms(&l, &bad, dir)) < 0)
		goto done;
	for (i = 0; i < bad.n; i++)
		fprintf(stderr, "%s/%s\n", dir, bad.v[i]);
	if (bad.n && !skip_bad) {
		error = co_error_set(CO_EINVAL, "%s: %zu file(s) could not be mapped; nothing "
						"imported (--skip-bad-rows imports the other %zu)",
				     dir, bad.n, l.n);
		goto done;
	}
	if ((error = co_migrate_import(&st, mo, &l)) < 0)
		goto done;
	print_stats(ctx, "import swarms", &st, mo->dry_run);
done:
	co_record_list_clear(&l);
	co_strv_clear(&bad);
	return error;
}

int co_cli_migrate(int argc, char **argv, co_cli *ctx)
{
	const char *direction = "git-to-etcd", *board = NULL, *swarms = NULL, *pos[1];
	int dry = 0, follow = 0, skip_bad = 0;
	co_cli_opt opts[] = {{"direction", &direction, NULL},
			     {"dry-run", NULL, &dry},
			     {"follow", NULL, &follow},
			     {"from-board", &board, NULL},
			     {"from-swarms", &swarms, NULL},
			     {"skip-bad-rows", NULL, &skip_bad},
			     {NULL, NULL, NULL}};
	co_migrate_opts mo = CO_MIGRATE_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_migrate_stats st;
	struct sigaction sa, old_int, old_term;
	const co_config *c;
	ui u = {0, -1, NULL};
	size_t n;
	int error;

	if ((error = co_cli_parse(pos, 0, &n, ctx, argc, argv, opts, U_MIGRATE, h_migrate)) != 0)
		return error < 0 ? error : 0;
	if (strcmp(direction, "git-to-etcd") == 0)
		mo.direction = CO_MIGRATE_GIT_TO_ETCD;
	else if (strcmp(direction, "etcd-to-git") == 0)
		mo.direction = CO_MIGRATE_ETCD_TO_GIT;
	else
		return co_cli_usage_error(U_MIGRATE, "--direction \"%s\": git-to-etcd or "
					  "etcd-to-git", direction);
	if (follow && mo.direction != CO_MIGRATE_GIT_TO_ETCD)
		return co_cli_usage_error(U_MIGRATE, "--follow mirrors git into etcd: it goes "
					  "with --direction git-to-etcd");
	if (follow && dry)
		return co_cli_usage_error(U_MIGRATE, "--follow cannot be a --dry-run");
	if ((error = co_cli_config(&c, ctx)) < 0)
		return error;
	if (!c->git_repo)
		return co_error_set(CO_EINVAL, "no git repo configured (CUTOVER_GIT_REPO)");
	u.tty = isatty(STDERR_FILENO);
	mo.dry_run = dry;
	mo.git_repo = c->git_repo;
	mo.git_branch = c->git_branch ? c->git_branch : "main";
	mo.state_dir = c->state_dir;
	mo.progress = on_progress;
	mo.log = on_log;
	mo.ud = &u;
	co_etcd_opts_from_config(&eo, c);
	mo.etcd = &eo;

	if (board || swarms) {
		if (board && (error = import_board(ctx, &mo, board, skip_bad)) < 0)
			return error;
		if (swarms && (error = import_swarms(ctx, &mo, swarms, skip_bad)) < 0)
			return error;
		return 0;
	}
	if (eo.n_endpoints == 0)
		return co_error_set(CO_EINVAL, "no etcd endpoints configured "
					       "(CUTOVER_ETCD_ENDPOINTS)");

	/* No SA_RESTART: the follower's sleeps end early on a signal. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	stop_requested = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	error = co_migrate_backfill(&st, &mo);
	if (error == 0 || st.source)
		print_stats(ctx, mo.direction == CO_MIGRATE_GIT_TO_ETCD ? "git-to-etcd"
									 : "etcd-to-git",
			    &st, dry);
	if (error == 0 && follow && !stop_requested)
		error = co_migrate_follow(&mo, &stop_requested);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	return error;
}
