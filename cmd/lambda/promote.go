package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/promotion"
)

// stagePromote is invoked on a schedule: it starts the promotions whose soak is over (karma.json
// "promotion"; shared/promotion). The end of each soak is stored with its change set, so the
// schedule's interval only bounds how late a promotion starts.
const stagePromote = "promote"

// scheduledHandler is the handler of a function invoked by an EventBridge schedule.
type scheduledHandler = func(context.Context, events.EventBridgeEvent) error

// setupPromote wires the promote function: the change sets and the event bus.
func setupPromote(ctx context.Context, a *app.App) (scheduledHandler, error) {
	if a.Config.EventBus == "" {
		return nil, errors.New("KARMA_EVENT_BUS is not set: a promotion's change is published to an EventBridge bus")
	}
	changeSets, err := a.ChangeSets(ctx)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", stagePromote, err)
	}
	pub, err := a.Publisher(ctx)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", stagePromote, err)
	}
	return func(ctx context.Context, _ events.EventBridgeEvent) error {
		started, err := promotion.Start(ctx, changeSets, pub.Publish, time.Now())
		for _, s := range started {
			a.Log().Info("promotion: the next environment starts", "from", s.From, "held", s.Held, "env", s.Env, "change_set", s.ChangeSetID, "try", max(s.Attempt, 1))
		}
		return err
	}, nil
}
