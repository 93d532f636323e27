package drift

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/usekarma/karma/shared/message"
)

// Records remembers the first value recorded under a key (pipeline.Records: the idempotency
// store's records).
type Records interface {
	RecordFirst(ctx context.Context, key, value string) (string, error)
	Recorded(ctx context.Context, key string) (string, error)
}

// Publisher sends root messages into the pipeline (the queue, or the event bus).
type Publisher interface {
	Publish(ctx context.Context, msgs ...message.Envelope) error
}

// Recorder turns a report's drifts into events, once each. A drift already recorded (its id is
// under "drift|<drift id>" in Records) is marked Recorded in the report and not published again;
// the new ones of an environment are published as drift.detected, and — when the environment
// does not allow drift — with one corrective change.detected (source drift) whose root causes
// they are. Each is recorded once published, so a failed publish never claims a drift; two runs
// at once may both publish it, which the pipeline's idempotency keys make one event.
type Recorder struct {
	Records   Records
	Publisher Publisher
	// Actor is who runs the check: the CLI user, or Karma itself on a schedule.
	Actor message.Actor
	// AutoApprove: corrective change sets may be applied without review.
	AutoApprove bool
}

// RecordKey is where a drift's first publication is recorded.
func RecordKey(driftID string) string { return "drift|" + driftID }

// Record publishes the new drifts of every environment of rep and fills in what was done:
// Action and ChangeSetID of each finding, Recorded for those seen before, Corrective.
func (r *Recorder) Record(ctx context.Context, rep *Report) error {
	for i := range rep.Envs {
		if err := r.recordEnv(ctx, &rep.Envs[i]); err != nil {
			return err
		}
	}
	return nil
}

func (r *Recorder) recordEnv(ctx context.Context, er *EnvReport) error {
	fresh, err := r.sortOut(ctx, er.Findings)
	if err != nil || len(fresh) == 0 {
		return err
	}
	action, corrective := message.DriftReport, (*message.Envelope)(nil)
	// A drift of a component whose rollback stands is reported only: the correction deploys
	// the head's config, which would undo the rollback.
	correct := slices.DeleteFunc(slices.Clone(fresh), func(f *Finding) bool { return f.Rollback != nil })
	if !er.AllowDrift && len(correct) > 0 {
		e, p, err := correction(er.Env, r.Actor, r.AutoApprove, correct)
		if err != nil {
			return err
		}
		// One change per drift set, however often it is published: the change id recorded
		// first for its key is the one every run names (as trigger.Commits does for a commit),
		// so a run publishing again after a failed record (the pipeline deduplicates the
		// message by its key) does not record a change set that was never made.
		id, err := r.Records.RecordFirst(ctx, CorrectionKey(e.IdempotencyKey), e.ID)
		if err != nil {
			return fmt.Errorf("drift: recording the corrective change of %s: %w", er.Env, err)
		}
		p.ChangeSetID, e.ID, e.CorrelationID = id, id, id
		if e.Payload, err = json.Marshal(p); err != nil {
			return err
		}
		action, corrective, er.Corrective = message.DriftCorrect, &e, e.ID
	}
	msgs := make([]message.Envelope, 0, len(fresh)+1)
	for _, f := range fresh {
		f.Action = action
		switch {
		case f.Rollback != nil && !er.AllowDrift:
			f.Action = message.DriftReport
			f.Detail += fmt.Sprintf("; not corrected: the rollback %s to %s stands, and a correction would deploy the head's config over it "+
				"(karma rollback %s deploys its config again)", f.Rollback.DeploymentID, f.Rollback.RolledBackTo, f.Rollback.RolledBackTo)
		case corrective != nil:
			f.ChangeSetID = corrective.ID
		}
		e, err := message.New(message.TypeDriftDetected, er.Env, r.Actor, "drift.detected:"+f.DriftID, f.DriftDetected)
		if err != nil {
			return err
		}
		msgs = append(msgs, e)
	}
	if corrective != nil {
		msgs = append(msgs, *corrective)
	}
	if err := r.Publisher.Publish(ctx, msgs...); err != nil {
		return fmt.Errorf("drift: publishing %d drift event(s) of %s: %w", len(fresh), er.Env, err)
	}
	for i, f := range fresh {
		b, _ := json.Marshal(Recorded{MessageID: msgs[i].ID, Action: f.Action, ChangeSetID: f.ChangeSetID})
		if _, err := r.Records.RecordFirst(ctx, RecordKey(f.DriftID), string(b)); err != nil {
			return fmt.Errorf("drift: %s published, but not recorded as such: %w", f.DriftID, err)
		}
	}
	return nil
}

// MarkRecorded marks the findings of rep that an earlier run published (Recorded, Action,
// ChangeSetID), publishing nothing: what a read-only view of the drift shows.
func MarkRecorded(ctx context.Context, records Records, rep *Report) error {
	for i := range rep.Envs {
		if _, err := sortOut(ctx, records, rep.Envs[i].Findings); err != nil {
			return err
		}
	}
	return nil
}

// sortOut marks the findings recorded before and returns the new ones.
func (r *Recorder) sortOut(ctx context.Context, fs []Finding) ([]*Finding, error) {
	return sortOut(ctx, r.Records, fs)
}

func sortOut(ctx context.Context, records Records, fs []Finding) ([]*Finding, error) {
	var fresh []*Finding
	for i := range fs {
		f := &fs[i]
		v, err := records.Recorded(ctx, RecordKey(f.DriftID))
		if err != nil {
			return nil, fmt.Errorf("drift: was %s recorded: %w", f.DriftID, err)
		}
		if v == "" {
			fresh = append(fresh, f)
			continue
		}
		var rec Recorded
		if err := json.Unmarshal([]byte(v), &rec); err != nil {
			rec = Recorded{MessageID: v}
		}
		f.Recorded, f.Action, f.ChangeSetID = &rec, rec.Action, rec.ChangeSetID
	}
	return fresh, nil
}

// correction is the corrective change.detected of fresh drifts — the drifted components
// (orphans as removed), built by resolve from the deploy branch's head — and its payload, which
// the caller encodes once the change's id is known.
func correction(env string, actor message.Actor, auto bool, fresh []*Finding) (message.Envelope, message.ChangeDetected, error) {
	var ids []string
	comps, removed := map[string]bool{}, map[string]bool{}
	for _, f := range fresh {
		ids = append(ids, f.DriftID)
		_, ref, _ := strings.Cut(f.Component, "/")
		if f.Reason == message.DriftOrphan {
			removed[ref] = true
		} else {
			comps[ref] = true
		}
	}
	slices.Sort(ids)
	p := message.ChangeDetected{Source: message.SourceDrift, Components: refs(comps), Removed: refs(removed), Drift: ids, AutoApprove: auto}
	if len(p.Removed) == 0 {
		p.Removed = nil
	}
	e, err := message.New(message.TypeChangeDetected, env, actor, "drift:"+message.DriftSetKey(ids), struct{}{})
	return e, p, err
}

// CorrectionKey is where the change id of a corrective change (its idempotency key) is recorded.
func CorrectionKey(idempotencyKey string) string { return "change|" + idempotencyKey }

func refs(set map[string]bool) []message.ComponentRef {
	out := []message.ComponentRef{}
	for _, ref := range slices.Sorted(maps.Keys(set)) {
		typ, nick, _ := strings.Cut(ref, "/")
		out = append(out, message.ComponentRef{Type: typ, Nickname: nick})
	}
	return out
}
