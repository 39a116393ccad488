/*
 * id.c - record ID validation.
 *
 * A hand-written check rather than a regex: it can name the offending byte
 * and its position, which is what an operator needs at 3 a.m.
 */
#include "id.h"

#include "error.h"

#include <string.h>

static int is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int co_id_validate(const char *id)
{
	size_t len, i;

	if (id == NULL || id[0] == '\0')
		return co_error_set(CO_EINVAL, "invalid id: empty");
	len = strnlen(id, CO_ID_MAX + 1);
	if (len > CO_ID_MAX)
		return co_error_set(CO_EINVAL, "invalid id: longer than %d bytes", CO_ID_MAX);
	if (!is_alnum((unsigned char)id[0]))
		return co_error_set(CO_EINVAL,
				    "invalid id \"%.40s\": must start with a letter or digit",
				    id[0] < 0x20 ? "?" : id);
	for (i = 1; i < len; i++) {
		unsigned char c = (unsigned char)id[i];

		if (is_alnum(c) || c == '.' || c == '_' || c == '-')
			continue;
		if (c < 0x20 || c >= 0x7f)
			return co_error_set(CO_EINVAL,
					    "invalid id: byte 0x%02x at offset %zu "
					    "(allowed: A-Z a-z 0-9 . _ -)",
					    c, i);
		return co_error_set(CO_EINVAL,
				    "invalid id \"%.40s\": character '%c' at offset %zu "
				    "(allowed: A-Z a-z 0-9 . _ -)",
				    id, c, i);
	}
	return 0;
}
