package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/drift"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
)

// serveDriftActor is who the scheduled drift check of karma serve acts as.
var serveDriftActor = message.Actor{Kind: "karma", Name: "drift check (karma serve)"}

// serveDrift runs the drift check every interval (the first after one interval, so that what
// serve found queued at start is resolved first) until ctx ends: every environment of the
// repository on the embedded parameter store, the account's environment on SSM. What it finds
// is published like `karma drift` publishes it, and the stages of this process handle it.
func serveDrift(ctx context.Context, log *slog.Logger, st *stack, every time.Duration, auto bool) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		serveDriftOnce(ctx, log, st, auto)
	}
}

func serveDriftOnce(ctx context.Context, log *slog.Logger, st *stack, auto bool) {
	a := st.s.app
	opts, ok := serveDriftOptions(ctx, log, st)
	if !ok {
		return
	}
	checker, err := a.DriftChecker(ctx)
	if err == nil {
		var rep *drift.Report
		if rep, err = checker.Check(ctx, opts); err == nil {
			var rec *drift.Recorder
			if rec, err = a.DriftRecorder(ctx, serveDriftActor, auto); err == nil {
				err = rec.Record(ctx, rep)
			}
			logDrift(log, rep)
		}
	}
	if err != nil && ctx.Err() == nil {
		log.Warn("drift check failed", "error", err)
	}
}

// serveDriftOptions: every environment, or on SSM the one this account's <prefix>/environment
// names (none named: skipped, with a warning).
func serveDriftOptions(ctx context.Context, log *slog.Logger, st *stack) (drift.Options, bool) {
	if st.s.app.Config.Params != config.AWS {
		return drift.Options{}, true
	}
	store, err := st.s.params("")
	if err == nil {
		p, gerr := store.Get(ctx, model.EnvironmentParam(st.settings.Prefix))
		if gerr == nil {
			return drift.Options{Env: strings.TrimSpace(p.Value)}, true
		}
		err = gerr
	}
	log.Warn("drift check: this account names no environment: skipped", "parameter", model.EnvironmentParam(st.settings.Prefix), "error", err)
	return drift.Options{}, false
}

func logDrift(log *slog.Logger, rep *drift.Report) {
	for _, e := range rep.Envs {
		fresh := 0
		for _, f := range e.Findings {
			if f.Recorded == nil {
				fresh++
			}
		}
		attrs := []any{"env", e.Env, "commit", rep.Commit, "compared", e.Compared, "drifts", len(e.Findings), "new", fresh, "busy", len(e.Busy)}
		if e.Corrective != "" {
			attrs = append(attrs, "corrective_change", e.Corrective)
		}
		if e.Refresh {
			attrs = append(attrs, "refreshed", e.Refreshed)
		}
		level := slog.LevelInfo
		if fresh > 0 || len(e.Errors) > 0 {
			level = slog.LevelWarn
		}
		if len(e.Errors) > 0 {
			attrs = append(attrs, "errors", strings.Join(e.Errors, "; "))
		}
		log.Log(context.Background(), level, "drift check", attrs...)
	}
}
