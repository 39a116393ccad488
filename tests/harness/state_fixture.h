/*
 * state_fixture.h - a cmocka fixture holding a fresh state database.
 *
 * For the tests of the state module (audit, runs, outbox): each test gets a
 * co_state opened on its own temp dir, closed and removed after it.  Pass
 * co_test_state_setup / co_test_state_teardown to
 * cmocka_unit_test_setup_teardown; the test reads its co_test_state_fixture
 * from *state.  Include after cmocka's prerequisites.
 */
#ifndef CO_TEST_STATE_FIXTURE_H
#define CO_TEST_STATE_FIXTURE_H

#include "core/state.h"

typedef struct co_test_state_fixture {
	char dir[256]; /* the temp dir holding the database */
	co_state *st;
} co_test_state_fixture;

/* Make a temp dir and open a state database in it into *state.  0 / -1. */
int co_test_state_setup(void **state);

/* Close the database, remove its temp dir, free the fixture.  Returns 0. */
int co_test_state_teardown(void **state);

#endif
