/*
 * server_flags_admin.h - private to the server: the admin calls that
 * change the flags (server_flags_admin.c), as server_admin.c routes to
 * them.
 */
#ifndef CO_SERVER_FLAGS_ADMIN_H
#define CO_SERVER_FLAGS_ADMIN_H

#include "server_internal.h"

/* The flags as GET /v1/admin/flags shows them; a new object the caller
 * owns (cJSON_Delete), or hands to co_server__reply_json. */
cJSON *co_server__flags_json(const co_flags *f);

/*
 * POST /v1/admin/<what>, `what` one of "rollback", "resume", "stage" (the
 * caller has checked the token, the name and the method).  Answers into rp:
 * 200 with the flags now, or the error's status with its message; on an
 * error the flags file is left as it was.
 */
void co_server__flags_admin(reply *rp, co_server *s, const req *rq, const char *what);

#endif
