/*
 * state_fixture.c - the fresh-state-database fixture shared by the tests of
 * audit, runs and the outbox (state_fixture.h).  It only opens and removes:
 * every test puts in the rows it needs.
 */
#include "harness/state_fixture.h"

#include "harness/harness.h"

#include <stdlib.h>

int co_test_state_setup(void **state)
{
	co_test_state_fixture *f = calloc(1, sizeof(*f));

	if (f == NULL || co_test_tmpdir(f->dir, sizeof(f->dir)) < 0)
		goto fail;
	if (co_state_open(&f->st, f->dir) < 0)
		goto fail;
	*state = f;
	return 0;
fail:
	if (f && f->dir[0])
		co_test_rmrf(f->dir);
	free(f);
	return -1;
}

int co_test_state_teardown(void **state)
{
	co_test_state_fixture *f = *state;

	co_state_close(f->st);
	co_test_rmrf(f->dir);
	free(f);
	return 0;
}
