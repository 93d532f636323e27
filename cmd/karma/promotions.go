package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/promotion"
)

// startPromotions publishes the next environment's change of every change whose promotion is due
// (its change set succeeded and its soak is over, or was ended by karma promote), and says so.
// karma plan, apply and promote run it as they start; karma serve runs it on a timer.
func (st *stack) startPromotions(ctx context.Context, w io.Writer) error {
	started, err := promotion.Start(ctx, st.changeSets, st.publish, time.Now())
	for _, s := range started {
		if s.Held != "" {
			fmt.Fprintf(w, "change set %s was held in %s; what it waits for moved -> try %d, change set %s\n", s.Held, s.Env, s.Attempt, s.ChangeSetID)
			continue
		}
		if s.Attempt > 1 {
			fmt.Fprintf(w, "promotion: %s into %s was held; what it waits for moved -> try %d, change set %s\n", s.From, s.Env, s.Attempt, s.ChangeSetID)
			continue
		}
		how := "its soak is over"
		if s.Skipped != nil {
			how = fmt.Sprintf("soak ended early by %s: %s", s.Skipped.By, s.Skipped.Reason)
		}
		fmt.Fprintf(w, "promotion: %s succeeded (%s) -> change set %s starts in %s\n", s.From, how, s.ChangeSetID, s.Env)
	}
	return err
}

// promotionNote says where a change set's change goes next, for people ("" when nowhere).
func promotionNote(cs *changeset.ChangeSet, now time.Time) string {
	p := cs.Promotion
	switch {
	case p == nil:
		return ""
	case !p.PromotedAt.IsZero():
		return fmt.Sprintf("promoted to %s (change set %s)", p.Next, cs.NextChangeSetID())
	case cs.Stopped() != "":
		return fmt.Sprintf("not promoted to %s: the promotion stopped here (karma promote status %s)", p.Next, cs.CorrelationID)
	case p.DueAt.IsZero():
		return fmt.Sprintf("then %s, once this change set succeeded", p.Next)
	case cs.PromotionDue(now):
		return fmt.Sprintf("due in %s: the next karma plan, apply or promote starts it", p.Next)
	}
	return fmt.Sprintf("soaking until %s (%s left), then %s; to end the soak now: karma promote %s --reason '…'",
		p.DueAt.Local().Format("15:04:05"), p.DueAt.Sub(now).Round(time.Millisecond), p.Next, cs.CorrelationID)
}
