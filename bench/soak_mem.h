/*
 * soak_mem.h - what serve's resident memory is made of, for the soak
 * (bench/bench_soak.c): /proc/PID/smaps summed by kind of mapping, so a
 * growing RSS names its cause (more thread stacks = threads never joined;
 * malloc arenas = heap; file mappings = libgit2 pack windows, SQLite), and
 * a least-squares slope of RSS over time, printed beside the verdict.
 *
 * Header-only (static), like bench_util.h, so bench_soak stays one program.
 * Kinds, from the layout glibc and the kernel give each:
 *   stack  an anonymous read-write mapping right after a small (<= 64 KiB)
 *          no-access guard: a pthread stack (and the main [stack])
 *   arena  an anonymous mapping at a 64 MiB boundary whose read-write part
 *          and no-access reserve together span 64 MiB: a glibc malloc heap
 *          of a thread arena
 *   heap   [heap], the main arena (brk)
 *   lib    a file mapping of a shared object or of the cutover binary
 *   file   any other file mapping (pack files, databases)
 *   anon   every other anonymous mapping (large mmapped blocks, libraries'
 *          own mmaps)
 * Errors: soak_smaps_read returns -1 when smaps cannot be read (the
 * process is gone); nothing is allocated past the call.
 */
#ifndef CO_SOAK_MEM_H
#define CO_SOAK_MEM_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

enum { MK_STACK, MK_ARENA, MK_HEAP, MK_LIB, MK_FILE, MK_ANON, MK_N };
static const char *const mk_name[MK_N] = {"stacks", "arenas", "[heap]",
					   "libs",   "files",  "anon"};

typedef struct soak_smaps {
	double t;	/* s since the load started */
	long kb[MK_N];	/* Rss summed per kind */
	int count[MK_N]; /* mappings per kind (read-write parts only) */
} soak_smaps;

typedef struct soak_map {
	uintptr_t lo, hi;
	char perm[5];
	int anon; /* no path */
	int kind; /* -1: a guard or reserve, no Rss to speak of */
	char path[160];
	long rss;
} soak_map;

#define SOAK_ARENA_SPAN ((uintptr_t)64 << 20)

static int soak_map_kind(const soak_map *m, const soak_map *prev, const soak_map *next)
{
	const char *base;

	if (strcmp(m->path, "[heap]") == 0)
		return MK_HEAP;
	if (strcmp(m->path, "[stack]") == 0)
		return MK_STACK;
	if (m->path[0] == '[')
		return MK_ANON; /* vdso, vvar: a few pages */
	if (!m->anon) {
		base = strrchr(m->path, '/');
		base = base ? base + 1 : m->path;
		return strstr(base, ".so") || strcmp(base, "cutover") == 0 ? MK_LIB
									   : MK_FILE;
	}
	if (m->perm[0] == '-' && m->perm[1] == '-')
		return -1;
	if (m->lo % SOAK_ARENA_SPAN == 0 &&
	    (m->hi - m->lo == SOAK_ARENA_SPAN ||
	     (next && next->anon && next->lo == m->hi && next->perm[0] == '-' &&
	      next->hi - m->lo == SOAK_ARENA_SPAN)))
		return MK_ARENA;
	if (prev && prev->anon && prev->hi == m->lo && prev->perm[0] == '-' &&
	    prev->perm[1] == '-' && prev->hi - prev->lo <= 65536 &&
	    m->hi - m->lo >= ((uintptr_t)1 << 20))
		return MK_STACK;
	return MK_ANON;
}

/* Read /proc/pid/smaps into *out (out->t is left to the caller). */
static int soak_smaps_read(pid_t pid, soak_smaps *out)
{
	char path[64], line[512];
	soak_map *m = NULL, *cur = NULL;
	size_t n = 0, cap = 0, i;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, inode;
		char perm[5];
		int at = 0;
		long kb;

		if (sscanf(line, "%lx-%lx %4s %*s %*s %lu %n", &lo, &hi, perm, &inode,
			   &at) == 4) {
			if (n == cap) {
				size_t c = cap ? 2 * cap : 512;
				soak_map *g = realloc(m, c * sizeof(*m));

				if (g == NULL)
					break;
				m = g;
				cap = c;
			}
			cur = &m[n++];
			memset(cur, 0, sizeof(*cur));
			cur->lo = lo;
			cur->hi = hi;
			memcpy(cur->perm, perm, sizeof(cur->perm));
			snprintf(cur->path, sizeof(cur->path), "%s", line + at);
			cur->path[strcspn(cur->path, "\n")] = '\0';
			cur->anon = cur->path[0] == '\0';
		} else if (cur && sscanf(line, "Rss: %ld kB", &kb) == 1)
			cur->rss = kb;
	}
	fclose(f);
	memset(out->kb, 0, sizeof(out->kb));
	memset(out->count, 0, sizeof(out->count));
	for (i = 0; i < n; i++) {
		int k = soak_map_kind(&m[i], i ? &m[i - 1] : NULL,
				      i + 1 < n ? &m[i + 1] : NULL);

		if (k < 0)
			continue;
		out->kb[k] += m[i].rss;
		out->count[k]++;
	}
	free(m);
	return n ? 0 : -1;
}

/* Least-squares slope of y over x, from samples [from, to); 0 if too few. */
static double soak_slope(const double *x, const double *y, size_t from, size_t to)
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0, k, d;
	size_t i;

	if (to < from + 2)
		return 0;
	k = (double)(to - from);
	for (i = from; i < to; i++) {
		sx += x[i];
		sy += y[i];
		sxx += x[i] * x[i];
		sxy += x[i] * y[i];
	}
	d = k * sxx - sx * sx;
	return d > 0 ? (k * sxy - sx * sy) / d : 0;
}

/* The table of snapshots: one row each, KiB and mapping counts per kind. */
static void soak_smaps_print(const soak_smaps *s, size_t n)
{
	size_t i;
	int k;

	printf("\nserve's RSS by kind of mapping (/proc/PID/smaps; KiB/mappings):\n%6s",
	       "t (s)");
	for (k = 0; k < MK_N; k++)
		printf(" %14s", mk_name[k]);
	printf("\n");
	for (i = 0; i < n; i++) {
		printf("%6.0f", s[i].t);
		for (k = 0; k < MK_N; k++)
			printf(" %9ld/%-4d", s[i].kb[k], s[i].count[k]);
		printf("\n");
	}
}

#endif
