/*
 * claim.c - the smallest program on libcutover: open the router on a git
 * repository, create a task, claim it, complete it, list the tasks.
 *
 *   cc claim.c $(pkg-config --cflags --libs cutover) -o claim
 *   ./claim /srv/tasks.git /tmp/claim-state [http://127.0.0.1:2379]
 *
 * The router sends each operation where the rollout flags in
 * STATE_DIR/flags.yaml say (no file: git); the etcd endpoint is used once
 * a stage routes tasks there.  Running it twice is fine: the task exists
 * (completed) and the claim's conflict is reported, exit 0.  Exit 0, or 1
 * with the library's message on stderr.
 */
#include <cutover/cutover.h>

#include <inttypes.h>
#include <stdio.h>

#define TASK_ID "example.1"
#define SWARM "example-swarm"

static int fail(const char *what, int error)
{
	fprintf(stderr, "claim: %s: %s: %s\n", what, cutover_strerror(error),
		cutover_last_error());
	return 1;
}

int main(int argc, char **argv)
{
	cutover_options opts = CUTOVER_OPTIONS_INIT;
	cutover_router *router = NULL;
	cutover_record *task = NULL, *got = NULL;
	cutover_record_list *tasks = NULL;
	const char *etcd[1];
	int error, rc = 1;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: claim GIT_REPO STATE_DIR [ETCD_ENDPOINT]\n");
		return 1;
	}
	opts.git_repo = argv[1];
	opts.state_dir = argv[2];
	if (argc == 4) {
		etcd[0] = argv[3];
		opts.etcd_endpoints = etcd;
		opts.n_etcd_endpoints = 1;
	}
	printf("libcutover %s\n", cutover_version());

	if ((error = cutover_router_open(&router, &opts)) < 0)
		return fail("open", error);

	/* A task to create: the record is ours, the router does not take it. */
	if ((error = cutover_task_new(&task, TASK_ID)) < 0 ||
	    (error = cutover_record_set_type(task, "build")) < 0 ||
	    (error = cutover_record_set_metadata(task, "{\"from\": \"example\"}")) < 0) {
		rc = fail("new task", error);
		goto done;
	}
	error = cutover_router_task_create(&got, router, task);
	if (error == CUTOVER_ECONFLICT) {
		printf("exists: %s\n", TASK_ID); /* from an earlier run, since changed */
	} else if (error < 0) {
		rc = fail("create", error);
		goto done;
	} else {
		printf("created %s (rev %" PRId64 ")\n", cutover_record_id(got),
		       cutover_record_rev(got));
	}
	cutover_record_free(got);
	got = NULL;

	/* Claim for 60 s.  A conflict also hands back the current record. */
	error = cutover_router_claim(&got, router, TASK_ID, SWARM, 60);
	if (error == CUTOVER_ECONFLICT && got) {
		printf("not claimed: %s is %s\n", TASK_ID,
		       cutover_status_name(cutover_record_status(got)));
		rc = 0;
		goto done;
	}
	if (error < 0) {
		rc = fail("claim", error);
		goto done;
	}
	printf("claimed %s by %s (rev %" PRId64 ")\n", cutover_record_id(got),
	       cutover_record_owner(got), cutover_record_rev(got));
	cutover_record_free(got);
	got = NULL;

	if ((error = cutover_router_release(&got, router, TASK_ID, SWARM,
					    CUTOVER_STATUS_COMPLETE)) < 0) {
		rc = fail("release", error);
		goto done;
	}
	printf("released %s: %s (rev %" PRId64 ")\n", cutover_record_id(got),
	       cutover_status_name(cutover_record_status(got)), cutover_record_rev(got));

	if ((error = cutover_router_list(&tasks, router, CUTOVER_KIND_TASK)) < 0) {
		rc = fail("list", error);
		goto done;
	}
	printf("%zu task(s)\n", cutover_record_list_count(tasks));
	rc = 0;
done:
	cutover_record_list_free(tasks);
	cutover_record_free(got);
	cutover_record_free(task);
	cutover_router_close(router);
	return rc;
}
