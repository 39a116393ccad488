/*
 * runbook.h - turn a runbook (runbooks/<name>.md) into a bash script that
 * runs its shell blocks in order, each command's exit status checked.
 *
 * The convention it implements is the one runbooks/README.md states:
 * fenced ```sh (or bash, shell) blocks run; every other block (text,
 * console, yaml, python, none) is shown only.  `<!-- runbook-test: ... -->`
 * lines just before a ```sh block change how it runs (skip REASON, for VAR
 * in V..., let K=V..., exit N, background, needs TOOL...), and a
 * `<!-- runbook-test: setup` ... `-->` comment holds commands that run at
 * that point without being shown.  A directive that is not understood, or
 * not followed by a block that runs, is an error naming its line, so a
 * typo in a marker cannot silently skip a block.
 *
 * Header-only (static functions) like tests/cli/cli_fixture.h; the script
 * it writes needs bash, and RB_WORK set to the directory it runs in.
 * Buffers are malloc'd; rb_buf_free() releases one.
 */
#ifndef CO_TEST_RUNBOOK_H
#define CO_TEST_RUNBOOK_H

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rb_buf {
	char *p;
	size_t n, cap;
} rb_buf;

static inline void rb_put(rb_buf *b, const char *s, size_t n)
{
	if (n > (size_t)1 << 30)
		abort();
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;

		while (b->n + n + 1 > cap)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (b->p == NULL)
			abort();
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static inline void rb_puts(rb_buf *b, const char *s)
{
	rb_put(b, s, strlen(s));
}

static inline __attribute__((format(printf, 2, 3))) void rb_printf(rb_buf *b,
								   const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	rb_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static inline void rb_buf_free(rb_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->n = b->cap = 0;
}

/* s as one single-quoted shell word. */
static inline void rb_quote(rb_buf *b, const char *s, size_t n)
{
	size_t i;

	rb_puts(b, "'");
	for (i = 0; i < n; i++) {
		if (s[i] == '\'')
			rb_puts(b, "'\\''");
		else
			rb_put(b, s + i, 1);
	}
	rb_puts(b, "'");
}

#define RB_MAX_VALS 8

typedef struct rb_subst {
	char key[64], val[128];
} rb_subst;

/* The directives seen since the last block; they apply to the next one. */
typedef struct rb_pending {
	int line;	 /* of the first directive; 0: none */
	char skip[256];	 /* skip, with this reason */
	char for_var[64];
	char for_vals[RB_MAX_VALS][64];
	int n_for;
	rb_subst let[RB_MAX_VALS];
	int n_let;
	int want_exit;
	int background;
	char needs[RB_MAX_VALS][64];
	int n_needs;
} rb_pending;

/* What a compile found, for the test to judge and report. */
typedef struct rb_stats {
	int commands;	    /* commands that will run (each value of a `for`) */
	int blocks_run;	    /* ```sh blocks that run */
	int blocks_skipped; /* ```sh blocks skipped by `skip` */
	int blocks_shown;   /* other blocks: shown, never run */
	int setups;	    /* hidden setup comments */
} rb_stats;

static inline int rb_is_word(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* in[0..n) with every key of subs replaced; a key that starts (ends) with a
 * word character matches only where a non-word character precedes (follows). */
static inline void rb_substitute(rb_buf *out, const char *in, size_t n,
				 const rb_subst *subs, int nsubs)
{
	size_t i = 0;

	while (i < n) {
		int k, hit = 0;

		for (k = 0; k < nsubs && !hit; k++) {
			const char *key = subs[k].key;
			size_t kl = strlen(key);

			if (kl == 0 || i + kl > n || memcmp(in + i, key, kl) != 0)
				continue;
			if (rb_is_word(key[0]) && i > 0 && rb_is_word(in[i - 1]))
				continue;
			if (rb_is_word(key[kl - 1]) && i + kl < n && rb_is_word(in[i + kl]))
				continue;
			rb_puts(out, subs[k].val);
			i += kl;
			hit = 1;
		}
		if (!hit)
			rb_put(out, in + i++, 1);
	}
}

/* The length of line[0..n) without a trailing `# comment` (quotes honoured). */
static inline size_t rb_code_len(const char *line, size_t n)
{
	char q = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		char c = line[i];

		if (q) {
			if (c == q)
				q = 0;
			else if (c == '\\' && q == '"' && i + 1 < n)
				i++;
		} else if (c == '\'' || c == '"') {
			q = c;
		} else if (c == '\\' && i + 1 < n) {
			i++;
		} else if (c == '#' && (i == 0 || isspace((unsigned char)line[i - 1]))) {
			break;
		}
	}
	while (i > 0 && isspace((unsigned char)line[i - 1]))
		i--;
	return i;
}

static inline __attribute__((format(printf, 3, 4))) int rb_fail(char *err, size_t errlen,
								 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Parse one directive (the text between "runbook-test:" and "-->"). */
static inline int rb_directive(rb_pending *p, const char *d, const char *name, int line,
			       char *err, size_t errlen)
{
	char word[32] = "";
	int used = 0;

	sscanf(d, " %31s %n", word, &used);
	d += used;
	if (p->line == 0)
		p->line = line;
	if (strcmp(word, "skip") == 0) {
		if (*d == '\0')
			return rb_fail(err, errlen, "%s:%d: `skip` needs a reason", name, line);
		snprintf(p->skip, sizeof(p->skip), "%s", d);
	} else if (strcmp(word, "for") == 0) {
		char var[64], in[8];
		int n = 0;

		if (sscanf(d, "%63s %7s %n", var, in, &n) < 2 || strcmp(in, "in") != 0 ||
		    d[n] == '\0')
			return rb_fail(err, errlen, "%s:%d: `for VAR in V...` expected", name,
				       line);
		snprintf(p->for_var, sizeof(p->for_var), "%s", var);
		d += n;
		while (*d && p->n_for < RB_MAX_VALS) {
			used = 0;
			sscanf(d, "%63s %n", p->for_vals[p->n_for++], &used);
			d += used;
		}
	} else if (strcmp(word, "let") == 0) {
		while (*d && p->n_let < RB_MAX_VALS) {
			char kv[200];
			char *eq;
			rb_subst *s = &p->let[p->n_let++];

			used = 0;
			sscanf(d, "%199s %n", kv, &used);
			d += used;
			eq = strchr(kv, '=');
			if (eq == NULL || eq == kv)
				return rb_fail(err, errlen, "%s:%d: `let K=V...`: \"%s\"", name,
					       line, kv);
			*eq = '\0';
			snprintf(s->key, sizeof(s->key), "%.63s", kv);
			snprintf(s->val, sizeof(s->val), "%.127s", eq + 1);
		}
	} else if (strcmp(word, "exit") == 0) {
		char *end;
		long v = strtol(d, &end, 10);

		if (end == d || *end != '\0' || v < 0 || v > 255)
			return rb_fail(err, errlen, "%s:%d: `exit N` (0-255) expected", name,
				       line);
		p->want_exit = (int)v;
	} else if (strcmp(word, "background") == 0 && *d == '\0') {
		p->background = 1;
	} else if (strcmp(word, "needs") == 0 && *d != '\0') {
		while (*d && p->n_needs < RB_MAX_VALS) {
			used = 0;
			sscanf(d, "%63s %n", p->needs[p->n_needs++], &used);
			d += used;
		}
	} else {
		return rb_fail(err, errlen,
			       "%s:%d: unknown runbook-test directive \"%s\" (skip, for, "
			       "let, exit, background, needs, setup)",
			       name, line, word);
	}
	return 0;
}

/*
 * One command (lines[0..n), continuation lines joined by the shell) into
 * the script: where it is, then the command, then the check of its exit.
 */
static inline void rb_emit(rb_buf *out, const char *name, int line, const char *label,
			   const char *cmd, size_t n, const rb_pending *p, const rb_subst *subs,
			   int nsubs)
{
	rb_buf c = {0}, where = {0};

	rb_substitute(&c, cmd, n, subs, nsubs);
	rb_printf(&where, "%s:%d%s", name, line, label);
	rb_puts(out, "rb_at ");
	rb_quote(out, where.p, where.n);
	rb_puts(out, " ");
	rb_quote(out, c.p, c.n);
	rb_puts(out, "\n");
	if (p && p->background) {
		rb_put(out, c.p, rb_code_len(c.p, c.n));
		rb_printf(out, " >\"$RB_WORK/background.%d.log\" 2>&1 &\n"
			  "rb_bg $! \"$RB_WORK/background.%d.log\"; RB_RAN=$((RB_RAN + 1))\n",
			  line, line);
	} else {
		rb_put(out, c.p, c.n);
		rb_printf(out, "\nrb_check $? %d\n", p ? p->want_exit : 0);
	}
	rb_buf_free(&c);
	rb_buf_free(&where);
}

/* The shell helpers every script starts with. */
static const char rb_prelude[] =
	"set -o pipefail\n"
	"RB_BG=() RB_RAN=0\n"
	"rb_stop() { local p; for p in \"${RB_BG[@]}\"; do kill -TERM \"$p\" 2>/dev/null; done;"
	" for p in \"${RB_BG[@]}\"; do wait \"$p\" 2>/dev/null; done;"
	" for p in background.*.log; do [ -f \"$p\" ] && printf '\\n--- %s:\\n' \"$p\" &&"
	" tail -n 20 \"$p\"; done; }\n"
	"trap rb_stop EXIT\n"
	/* RB_LOG: the output of the latest background command, for setups to poll. */
	"rb_bg() { RB_BG+=(\"$1\"); RB_LOG=$2; }\n"
	"rb_at() { RB_WHERE=$1; printf '\\n>>> %s\\n$ %s\\n' \"$1\" \"$2\"; }\n"
	"rb_check() { if [ \"$1\" -ne \"$2\" ]; then printf 'runbook-test: %s: exit %s, "
	"wanted %s\\n' \"$RB_WHERE\" \"$1\" \"$2\"; exit 1; fi; RB_RAN=$((RB_RAN + 1)); }\n"
	"rb_skip() { printf '\\n--- %s: not run: %s\\n' \"$1\" \"$2\"; }\n"
	/* Bounded polls (30 s), for what a background command does to happen. */
	"rb_wait() { local i; for i in $(seq 300); do \"$@\" >/dev/null 2>&1 && return 0;"
	" sleep 0.1; done; echo \"runbook-test: never true: $*\"; return 1; }\n"
	"rb_wait_http() { rb_wait curl -fs -o /dev/null \"$1\"; }\n"
	"exec 2>&1\n"
	"cd \"$RB_WORK\" || exit 1\n";

/* The commands of lines [from, to) of a block (indent stripped) into out. */
static inline void rb_block(rb_buf *out, const char *name, char **lines, int from, int to,
			    int indent, const rb_pending *p, rb_stats *st)
{
	int v, nv = p->n_for ? p->n_for : 1;

	for (v = 0; v < nv; v++) {
		rb_subst subs[RB_MAX_VALS + 1];
		char label[96] = "";
		int nsubs = 0, i, k;

		for (k = 0; k < p->n_let; k++)
			subs[nsubs++] = p->let[k];
		if (p->n_for) {
			snprintf(subs[nsubs].key, sizeof(subs[nsubs].key), "%s", p->for_var);
			snprintf(subs[nsubs].val, sizeof(subs[nsubs].val), "%s",
				 p->for_vals[v]);
			nsubs++;
			snprintf(label, sizeof(label), " [%s=%s]", p->for_var, p->for_vals[v]);
		}
		for (i = from; i < to; i++) {
			rb_buf cmd = {0};
			int first = i, j;

			for (j = i; j < to; j++) {
				const char *l = lines[j];
				size_t len, ws = strspn(l, " ");

				l += ws < (size_t)indent ? ws : (size_t)indent;
				len = strlen(l);
				if (j > i)
					rb_puts(&cmd, "\n");
				rb_put(&cmd, l, len);
				if (len == 0 || l[len - 1] != '\\')
					break;
			}
			i = j;
			if (rb_code_len(cmd.p, cmd.n) > 0 && cmd.p[strspn(cmd.p, " ")] != '#') {
				rb_emit(out, name, first + 1, label, cmd.p, cmd.n, p, subs,
					nsubs);
				st->commands++;
			}
			rb_buf_free(&cmd);
		}
	}
}

/*
 * Compile the Markdown text md (named `name` in messages) into *out, the
 * bash script that runs it.  0, or -1 with err naming the line.
 */
static inline int rb_compile(const char *md, const char *name, rb_buf *out, rb_stats *st,
			     char *err, size_t errlen)
{
	char *copy = strdup(md), *s, **lines = NULL;
	int n = 0, cap = 0, i, rc = 0;
	rb_pending p = {0};

	memset(st, 0, sizeof(*st));
	if (copy == NULL)
		abort();
	for (s = copy; s && *s;) {
		char *nl = strchr(s, '\n');

		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			lines = realloc(lines, (size_t)cap * sizeof(*lines));
			if (lines == NULL)
				abort();
		}
		lines[n++] = s;
		if (nl)
			*nl = '\0';
		s = nl ? nl + 1 : NULL;
	}
	rb_printf(out, "# generated from %s by tests/runbooks: do not edit\n", name);
	rb_puts(out, rb_prelude);
	for (i = 0; i < n && rc == 0; i++) {
		const char *l = lines[i];
		int indent = (int)strspn(l, " ");
		const char *t = l + indent;

		if (strncmp(t, "<!-- runbook-test:", 18) == 0) {
			const char *d = t + 18;
			size_t dl;
			char dir[512];

			while (*d == ' ')
				d++;
			if (strcmp(d, "setup") == 0) {
				int end = i + 1;

				while (end < n && strcmp(lines[end] + strspn(lines[end], " "),
							 "-->") != 0)
					end++;
				if (end == n) {
					rc = rb_fail(err, errlen, "%s:%d: setup without its -->",
						     name, i + 1);
					break;
				}
				{
					rb_pending none = {0};

					rb_block(out, name, lines, i + 1, end, indent, &none, st);
				}
				st->setups++;
				i = end;
				continue;
			}
			dl = strlen(d);
			if (dl < 3 || strcmp(d + dl - 3, "-->") != 0) {
				rc = rb_fail(err, errlen, "%s:%d: a runbook-test directive is "
					     "one line ending in -->", name, i + 1);
				break;
			}
			dl -= 3;
			while (dl > 0 && d[dl - 1] == ' ')
				dl--;
			snprintf(dir, sizeof(dir), "%.*s", (int)dl, d);
			rc = rb_directive(&p, dir, name, i + 1, err, errlen);
			continue;
		}
		if (strncmp(t, "```", 3) == 0) {
			char info[32] = "";
			int end = i + 1, runs, k;

			sscanf(t + 3, "%31s", info);
			while (end < n && strncmp(lines[end] + strspn(lines[end], " "), "```",
						  3) != 0)
				end++;
			if (end == n) {
				rc = rb_fail(err, errlen, "%s:%d: code block never closed", name,
					     i + 1);
				break;
			}
			runs = strcmp(info, "sh") == 0 || strcmp(info, "bash") == 0 ||
			       strcmp(info, "shell") == 0;
			if (!runs && p.line) {
				rc = rb_fail(err, errlen, "%s:%d: runbook-test directive before "
					     "a ```%s block, which never runs (only ```sh does)",
					     name, p.line, info);
				break;
			}
			if (!runs) {
				st->blocks_shown++;
			} else if (p.skip[0]) {
				rb_printf(out, "rb_skip '%s:%d' ", name, i + 1);
				rb_quote(out, p.skip, strlen(p.skip));
				rb_puts(out, "\n");
				st->blocks_skipped++;
			} else {
				for (k = 0; k < p.n_needs; k++)
					rb_printf(out, "if command -v %s >/dev/null; then\n",
						  p.needs[k]);
				rb_block(out, name, lines, i + 1, end, indent, &p, st);
				for (k = p.n_needs; k > 0; k--)
					rb_printf(out, "else rb_skip '%s:%d' 'no %s in PATH'; fi\n",
						  name, i + 1, p.needs[k - 1]);
				st->blocks_run++;
			}
			memset(&p, 0, sizeof(p));
			i = end;
			continue;
		}
		if (p.line && *t != '\0')
			rc = rb_fail(err, errlen, "%s:%d: runbook-test directive not followed "
				     "by a code block", name, p.line);
	}
	if (rc == 0 && p.line)
		rc = rb_fail(err, errlen, "%s:%d: runbook-test directive at the end, "
			     "before no block", name, p.line);
	rb_printf(out, "printf '\\nrunbook-test: %s: %%d commands ran\\n' \"$RB_RAN\"\n",
		  name);
	free(lines);
	free(copy);
	return rc;
}

#endif
