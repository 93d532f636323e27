package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/usekarma/karma/shared/promotion"
)

// servePromotions starts the promotions that are due — a change set that succeeded and whose
// soak is over — once at start and then every interval. The end of a soak is stored with its
// change set, so a restart picks up where the last process was.
func servePromotions(ctx context.Context, log *slog.Logger, st *stack, every time.Duration) {
	if every <= 0 {
		return
	}
	check := func() {
		started, err := promotion.Start(ctx, st.changeSets, st.publish, time.Now())
		for _, s := range started {
			attrs := []any{"from", s.From, "env", s.Env, "change_set", s.ChangeSetID}
			if s.Attempt > 1 {
				attrs = append(attrs, "try_after_hold", s.Attempt)
			}
			if s.Held != "" {
				attrs = append(attrs, "held", s.Held) // a held hotfix tried again: From is empty
			}
			if s.Skipped != nil {
				attrs = append(attrs, "soak_skipped_by", s.Skipped.By, "reason", s.Skipped.Reason)
			}
			log.Info("promotion: the next environment starts", attrs...)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("promotion: starting the due promotions failed; trying again at the next check", "error", err)
		}
	}
	check()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		}
	}
}
