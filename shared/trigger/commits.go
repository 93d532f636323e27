package trigger

import (
	"context"
	"fmt"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// Commits keeps a commit one change however often it is delivered — a webhook redelivery under
// a new delivery id, a retry after a failed publish, `karma ingest commit` of a pushed commit:
// the change recorded first for the commit (RecordKey) is the one every delivery names and
// publishes, and once its trigger is published nothing is published again.
type Commits struct {
	Records pipeline.Records // the change each commit started
	// Marks records that a commit's trigger was published ("webhook|published|git:<sha>", the
	// key earlier releases wrote).
	Marks     pipeline.Seen
	Publisher pipeline.Publisher
}

// Queued says what Queue did.
type Queued struct {
	ChangeID  string // the commit's change
	Duplicate bool   // its trigger was published before: nothing was published now
}

// Queue publishes pushed (a git.pushed from GitPushed) as its commit's change: the first change
// recorded for the commit, which becomes pushed's correlation id. A store or the pipeline that
// cannot be reached is an error naming it (a webhook answers 503: the sender retries; the
// retry publishes the same change).
func (c Commits) Queue(ctx context.Context, pushed message.Envelope) (Queued, error) {
	var p message.GitPushed
	if err := message.Decode(pushed, &p); err != nil || pushed.Type != message.TypeGitPushed {
		return Queued{}, fmt.Errorf("trigger: queue %s %s: want a git.pushed (%v)", pushed.Type, pushed.ID, err)
	}
	sha := p.Commit.SHA
	change, err := c.Records.RecordFirst(ctx, RecordKey(sha), pushed.CorrelationID)
	if err != nil {
		return Queued{}, fmt.Errorf("change store: %w", err)
	}
	published := "webhook|published|" + CommitKey(sha)
	done, err := c.Marks.Done(ctx, published)
	if err != nil {
		return Queued{}, fmt.Errorf("delivery store: %w", err)
	}
	if done {
		return Queued{ChangeID: change, Duplicate: true}, nil
	}
	pushed.CorrelationID = change
	if err := c.Publisher.Publish(ctx, pushed); err != nil {
		return Queued{}, fmt.Errorf("pipeline: %w", err)
	}
	// A lost mark only lets a later delivery publish the same change again, which ingest and
	// resolve do once (same keys).
	_ = c.Marks.Mark(ctx, published)
	return Queued{ChangeID: change}, nil
}
