/*
 * trigger_eval.c - the pure part of the live-signal triggers (triggers.h):
 * thresholds checked, a window snapshot turned into a verdict, git
 * baselines updated.  No store, no file, no clock: unit-tested alone.
 */
#include "triggers.h"

#include "core/error.h"

#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

const char *co_trigger_name(co_trigger_kind k)
{
	static const char *const names[CO_TRIGGER__COUNT] = {
	    "none", "error_rate", "latency", "health", "outbox_age"};

	return k >= 0 && k < CO_TRIGGER__COUNT ? names[k] : "?";
}

void co_trigger_cfg_for_router(co_trigger_cfg *out, const co_trigger_cfg *cfg, int fleet)
{
	*out = *cfg;
	if (!fleet || cfg->enabled)
		return;
	out->enabled = 1;
	out->min_samples = INT_MAX;   /* error rate and latency never judge */
	out->outbox_age_ms = INT_MAX; /* nor the outbox */
}

int co_trigger_cfg_check(const co_trigger_cfg *c)
{
	if (c->window_ms < 1000 || c->window_ms > CO_SIGNALS_WINDOW_MAX * 1000 ||
	    c->window_ms % 1000 != 0)
		return co_error_set(CO_EINVAL,
				    "triggers.window: %d ms must be whole seconds from "
				    "1s to 1h",
				    c->window_ms);
	if (c->min_samples < 1)
		return co_error_set(CO_EINVAL,
				    "triggers.min_samples: %d must be 1 or more",
				    c->min_samples);
	if (!(c->error_rate > 0.0 && c->error_rate <= 1.0))
		return co_error_set(CO_EINVAL,
				    "triggers.error_rate: %g must be more than 0 and at "
				    "most 1",
				    c->error_rate);
	if (!(c->latency_ratio > 1.0 && c->latency_ratio <= 1000.0))
		return co_error_set(
		    CO_EINVAL,
		    "triggers.latency_ratio: %g must be more than 1 and at "
		    "most 1000",
		    c->latency_ratio);
	if (c->health_grace_ms < 1)
		return co_error_set(CO_EINVAL,
				    "triggers.health_grace: %d ms must be more "
				    "than 0",
				    c->health_grace_ms);
	if (c->outbox_age_ms < 1)
		return co_error_set(CO_EINVAL,
				    "triggers.outbox_age: %d ms must be more than 0",
				    c->outbox_age_ms);
	return 0;
}

/* Armed: etcd in play (some operation not in git mode), kill switch off,
 * the cutover not completed (git is stale then: no way back to trip to). */
static int armed(char *why, size_t len, const co_flags *f)
{
	if (f->kill_switch) {
		snprintf(why, len, "kill switch on");
		return 0;
	}
	if (f->completed.on) {
		snprintf(why, len, "the cutover is completed: git is no longer written");
		return 0;
	}
	for (int op = 0; op < CO_OP__COUNT; op++)
		if (co_flags_get(f, (co_op)op).mode != CO_MODE_GIT)
			return 1;
	snprintf(why, len, "every operation in git mode");
	return 0;
}

/*
 * The latency judgement over every operation with a baseline at once, for
 * when etcd is so slow that no single operation gathers min_samples in the
 * window (the moment the trigger exists for).  The pool's p95 is held
 * against the largest baseline of the operations in it, so the pool never
 * looks slower than its slowest kind would alone.  Taken when its ratio is
 * the worse one.
 */
static void pooled_latency(co_trigger_eval *out, const co_trigger_cfg *cfg,
			   const co_signal_snapshot *snap, const co_trigger_inputs *in)
{
	co_signal_cell pool;
	int64_t base = 0, p95;
	int base_op = -1, kinds = 0;
	double ratio;

	memset(&pool, 0, sizeof(pool));
	for (int op = 0; op < CO_OP__COUNT; op++) {
		const co_signal_cell *e = &snap->cell[1][op];

		if (in->baseline_us[op] <= 0 || e->count == 0)
			continue;
		co_signal_cell_add(&pool, e);
		kinds++;
		if (in->baseline_us[op] > base) {
			base = in->baseline_us[op];
			base_op = op;
		}
	}
	if (kinds < 2 || pool.count < cfg->min_samples)
		return;
	p95 = co_signal_p95_us(&pool);
	ratio = (double)p95 / (double)base;
	if (ratio <= out->latency_ratio)
		return;
	out->latency_ratio = ratio;
	out->latency_op = base_op;
	out->latency_pooled = kinds;
	out->etcd_p95_us = p95;
	out->baseline_us = base;
	out->latency_samples = pool.count;
}

void co_triggers_eval(co_trigger_eval *out, const co_trigger_cfg *cfg,
		      const co_signal_snapshot *snap, const co_trigger_inputs *in)
{
	co_signal_cell all;
	int w = snap->window_s;

	memset(out, 0, sizeof(*out));
	memset(&all, 0, sizeof(all));
	out->latency_op = -1;
	for (int op = 0; op < CO_OP__COUNT; op++) {
		const co_signal_cell *e = &snap->cell[1][op];

		co_signal_cell_add(&all, e);
		if (in->baseline_us[op] <= 0)
			continue;
		out->baselines++;
		if (e->count >= cfg->min_samples) {
			int64_t p95 = co_signal_p95_us(e);
			double ratio = (double)p95 / (double)in->baseline_us[op];

			if (ratio > out->latency_ratio) {
				out->latency_ratio = ratio;
				out->latency_op = op;
				out->etcd_p95_us = p95;
				out->baseline_us = in->baseline_us[op];
				out->latency_samples = e->count;
			}
		}
	}
	pooled_latency(out, cfg, snap, in);
	out->etcd_ops = all.count;
	out->etcd_errors = all.errors;
	out->error_rate = all.count ? (double)all.errors / (double)all.count : 0.0;
	out->etcd_down_ms = in->etcd_down_ms;
	out->outbox_age_ms = in->outbox_age_ms;
	out->armed = armed(out->disarmed_why, sizeof(out->disarmed_why), &in->flags);
	if (!out->armed)
		return;

	if (in->etcd_down_ms > cfg->health_grace_ms) {
		out->fired = CO_TRIGGER_HEALTH;
		snprintf(out->reason, sizeof(out->reason),
			 "trigger health: etcd unhealthy for %lld ms > grace %d ms (%s)",
			 (long long)in->etcd_down_ms, cfg->health_grace_ms,
			 in->etcd_why[0] ? in->etcd_why : "breaker not closed");
		snprintf(out->figures, sizeof(out->figures),
			 "trigger=health down_ms=%lld grace_ms=%d",
			 (long long)in->etcd_down_ms, cfg->health_grace_ms);
	} else if (all.count >= cfg->min_samples && out->error_rate > cfg->error_rate) {
		out->fired = CO_TRIGGER_ERROR_RATE;
		snprintf(out->reason, sizeof(out->reason),
			 "trigger error_rate: etcd-path error rate %.1f%% (%lld of %lld "
			 "ops) over %d s > %.1f%%",
			 100.0 * out->error_rate, (long long)all.errors,
			 (long long)all.count, w, 100.0 * cfg->error_rate);
		snprintf(
		    out->figures, sizeof(out->figures),
		    "trigger=error_rate rate=%.4f errors=%lld samples=%lld window_s=%d "
		    "threshold=%g min_samples=%d",
		    out->error_rate, (long long)all.errors, (long long)all.count, w,
		    cfg->error_rate, cfg->min_samples);
	} else if (out->latency_op >= 0 && out->latency_ratio > cfg->latency_ratio) {
		out->fired = CO_TRIGGER_LATENCY;
		if (out->latency_pooled)
			snprintf(out->reason, sizeof(out->reason),
				 "trigger latency: etcd-path p95 %.1f ms over %d kinds of "
				 "operation > %gx the largest git baseline %.1f ms (%s) "
				 "(%.1fx, %lld ops over %d s)",
				 out->etcd_p95_us / 1000.0, out->latency_pooled,
				 cfg->latency_ratio, out->baseline_us / 1000.0,
				 co_op_name((co_op)out->latency_op), out->latency_ratio,
				 (long long)out->latency_samples, w);
		else
			snprintf(out->reason, sizeof(out->reason),
				 "trigger latency: %s etcd-path p95 %.1f ms > %gx git "
				 "baseline %.1f ms (%.1fx, %lld ops over %d s)",
				 co_op_name((co_op)out->latency_op),
				 out->etcd_p95_us / 1000.0, cfg->latency_ratio,
				 out->baseline_us / 1000.0, out->latency_ratio,
				 (long long)out->latency_samples, w);
		snprintf(out->figures, sizeof(out->figures),
			 "trigger=latency op=%s pooled=%d p95_us=%lld baseline_us=%lld "
			 "ratio=%.2f threshold=%g samples=%lld window_s=%d",
			 co_op_name((co_op)out->latency_op), out->latency_pooled,
			 (long long)out->etcd_p95_us, (long long)out->baseline_us,
			 out->latency_ratio, cfg->latency_ratio,
			 (long long)out->latency_samples, w);
	} else if (in->outbox_age_ms > cfg->outbox_age_ms) {
		out->fired = CO_TRIGGER_OUTBOX_AGE;
		snprintf(out->reason, sizeof(out->reason),
			 "trigger outbox_age: oldest outbox entry %lld ms old > %d ms",
			 (long long)in->outbox_age_ms, cfg->outbox_age_ms);
		snprintf(out->figures, sizeof(out->figures),
			 "trigger=outbox_age age_ms=%lld bound_ms=%d",
			 (long long)in->outbox_age_ms, cfg->outbox_age_ms);
	}
}

int co_triggers_baseline_update(int64_t baseline_us[CO_OP__COUNT],
				int64_t samples[CO_OP__COUNT], const co_trigger_cfg *cfg,
				const co_signal_snapshot *snap, const co_flags *flags)
{
	int changed = 0;

	for (int op = 0; op < CO_OP__COUNT; op++) {
		co_mode m = co_flags_get(flags, (co_op)op).mode;
		const co_signal_cell *g = &snap->cell[0][op];
		int64_t p95;

		if ((m != CO_MODE_GIT && m != CO_MODE_SHADOW) ||
		    g->count < cfg->min_samples)
			continue;
		p95 = co_signal_p95_us(g);
		if (p95 <= 0 || p95 == baseline_us[op])
			continue;
		baseline_us[op] = p95;
		samples[op] = g->count;
		changed++;
	}
	return changed;
}
