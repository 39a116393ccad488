/*
 * id.h - record ID validation (DESIGN §1).
 *
 * IDs become file names in git (tasks/<id>.json) and keys in etcd, so they
 * are checked before anything reaches a store: ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$.
 */
#ifndef CO_ID_H
#define CO_ID_H

#define CO_ID_MAX 128

/*
 * 0 if `id` is a valid record ID; CO_EINVAL with a message that names the
 * problem (empty, too long, leading character, the offending byte) if not.
 * NULL is invalid.  Thread-safe.
 */
int co_id_validate(const char *id);

#endif
