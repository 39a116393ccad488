/*
 * router_internal.h - test hooks of router.c; not part of the API.
 */
#ifndef CO_ROUTER_INTERNAL_H
#define CO_ROUTER_INTERNAL_H

/*
 * Non-zero: the syncer leaves deferred fulfils queued (until the router
 * closes), so a test can see what an ID's next operation does while a
 * record owed to git is still only in memory.
 */
extern _Atomic int co_router__hold_fulfils;

#endif
