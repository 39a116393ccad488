/*
 * demo_board.h - the sample legacy task board that `cutover demo` imports.
 *
 * It looks like the markdown board the swarms used to poll and edit (DESIGN
 * §6, the seeds): prose, a status legend, one task table per phase with the
 * emoji statuses, owners on the tasks in progress, blockers, and a metrics
 * table that the importer must ignore.  migrate/board.h parses it; every
 * row maps (the demo refuses to start if one does not, so the board and the
 * parser stay in step).
 *
 * Only cmd_demo.c includes this header: the array is defined here, static.
 */
#ifndef CO_CLI_DEMO_BOARD_H
#define CO_CLI_DEMO_BOARD_H

static const char co_demo_board[] =
	"# IF.coordinator task board\n"
	"\n"
	"Claim a task by editing its row and pushing. Poll every 30 s.\n"
	"Two swarms claiming the same row at once is a known problem: the one\n"
	"whose push lands second must re-read and pick another task.\n"
	"\n"
	"## Legend\n"
	"\n"
	"| Status | Meaning |\n"
	"|--------|---------|\n"
	"| \xf0\x9f\x94\xb5 AVAILABLE | ready to claim |\n"
	"| \xf0\x9f\x9f\xa1 IN PROGRESS | claimed by a swarm |\n"
	"| \xf0\x9f\x94\xb4 BLOCKED | waits for its blockers |\n"
	"| \xe2\x9c\x85 DONE | finished |\n"
	"\n"
	"## Phase 0: event bus\n"
	"\n"
	"| ID | Title | Status | Owner | Blocked by |\n"
	"|----|-------|--------|-------|------------|\n"
	"| P0.1.1 | Event bus interface | \xe2\x9c\x85 DONE | swarm-core | |\n"
	"| P0.1.2 | etcd adapter with leases | \xf0\x9f\x9f\xa1 IN PROGRESS | swarm-sip | P0.1.1 |\n"
	"| P0.1.3 | NATS adapter | \xf0\x9f\x94\xb5 AVAILABLE | | P0.1.1 |\n"
	"| P0.1.4 | Redis streams adapter | \xf0\x9f\x94\xb5 AVAILABLE | | P0.1.1 |\n"
	"| P0.1.5 | Adapter conformance suite | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"| P0.2.1 | Coordinator claim path | \xf0\x9f\x94\xb4 BLOCKED | | P0.1.2 |\n"
	"| P0.2.2 | Watch API | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"| P0.2.3 | Claim TTL and renewal | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"| P0.2.4 | Swarm registry | \xe2\x9c\x85 DONE | swarm-core | |\n"
	"| P0.2.5 | Capability matching | \xf0\x9f\x94\xb5 AVAILABLE | | P0.2.4 |\n"
	"\n"
	"## Phase 1: integrations\n"
	"\n"
	"| ID | Title | Status | Owner | Blocked by |\n"
	"|----|-------|--------|-------|------------|\n"
	"| P1.1.1 | SIP trunk integration | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"| P1.1.2 | WebRTC gateway | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"| P1.1.3 | Call recording | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"| P1.1.4 | Transcription hook | \xf0\x9f\x9f\xa1 IN PROGRESS | swarm-voice | |\n"
	"| P1.2.1 | CRM sync | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"| P1.2.2 | Ticketing bridge | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"| P1.2.3 | Calendar connector | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"| P1.2.4 | Billing export | \xf0\x9f\x94\xb4 BLOCKED | | P1.2.1 |\n"
	"| P1.3.1 | Metrics pipeline | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"| P1.3.2 | Alert routing | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"| P1.3.3 | Dashboard | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"| P1.3.4 | Load test harness | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"| P1.4.1 | Runbook automation | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"| P1.4.2 | Audit log shipping | \xf0\x9f\x94\xb5 AVAILABLE | | |\n"
	"\n"
	"## Metrics\n"
	"\n"
	"| Metric | Value |\n"
	"|---|---|\n"
	"| Tasks | 24 |\n"
	"| Merge conflicts last week | 17 |\n";

#endif
