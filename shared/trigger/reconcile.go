package trigger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
)

// Reconciler catches the parameter versions no event brought (Parameter Store Change events are
// delivered best-effort): every <prefix>/<type>/<nickname>/{config,runtime} parameter whose
// current version Karma did not write and that was not ingested yet gets its parameter.changed,
// naming the version. Run by the reconcile job: `karma serve --reconcile-every`, the reconcile
// function on AWS.
type Reconciler struct {
	Env    string       // the environment whose parameter store it compares
	Prefix string       // e.g. /iac
	Store  params.Store // that environment's parameter store
	// Seen is the pipeline's idempotency store: a version is ingested once resolve did its
	// change ("resolve|parameter:<name>@<v>@<written at>", "resolve|runtime:…",
	// message.ParameterVersionKey) or ingest its trigger
	// ("ingest|parameter.changed:<name>@<v>@<written at>", message.ParameterChangedKey); or
	// either key without the time, made before it was added — which a parameter deleted and
	// created again since shares with the version of its number before the deletion: such a
	// version whose event was lost stays unnoticed (until its next version), the price of not
	// handling again every version ingested before the upgrade.
	Seen        pipeline.Seen
	Publisher   pipeline.Publisher
	AutoApprove bool
}

// Run publishes the triggers of what was missed — each once (reconciledKey) — and returns them.
func (r Reconciler) Run(ctx context.Context) ([]message.Envelope, error) {
	ps, err := params.GetByPathDescribed(ctx, r.Store, r.Prefix)
	if err != nil {
		return nil, pipeline.Transient(fmt.Errorf("reconcile %s: listing %s: %w", r.Env, r.Prefix, err))
	}
	var out []message.Envelope
	for _, p := range ps {
		source := reconciledSource(p.Name, r.Prefix)
		if source == "" || params.IsKarmaWrite(p.Description, p.Value) {
			continue // not a component's; or Karma wrote it (its consequence is already under way)
		}
		key := message.ParameterChangedKey(message.ParameterChanged{Name: p.Name, Version: p.Version, WrittenAt: p.LastModified})
		done, err := r.ingested(ctx, reconciledKey(key),
			pipeline.StageResolve+"|"+message.ParameterVersionKey(source, p.Name, p.Version, p.LastModified),
			pipeline.StageIngest+"|"+key,
			// (keys made before the time was added)
			pipeline.StageResolve+"|"+message.ParameterVersionKey(source, p.Name, p.Version, time.Time{}),
			pipeline.StageIngest+"|"+message.ParameterChangedKey(message.ParameterChanged{Name: p.Name, Version: p.Version}))
		if err != nil {
			return out, pipeline.Transient(fmt.Errorf("reconcile %s: %w", r.Env, err))
		}
		if done {
			continue
		}
		e, err := ParameterChanged(ParameterChange{Env: r.Env, Name: p.Name, Operation: "Update", Version: p.Version, WrittenAt: p.LastModified,
			Actor: message.Actor{Kind: "karma", Name: "reconcile"}, AutoApprove: r.AutoApprove})
		if err != nil {
			return out, fmt.Errorf("reconcile %s: %w", r.Env, err)
		}
		if err := r.Publisher.Publish(ctx, e); err != nil {
			return out, pipeline.Transient(fmt.Errorf("reconcile %s: publishing %s: %w", r.Env, e.IdempotencyKey, err))
		}
		out = append(out, e)
		if err := r.Seen.Mark(ctx, reconciledKey(e.IdempotencyKey)); err != nil {
			return out, pipeline.Transient(fmt.Errorf("reconcile %s: %s published, but not marked so (the next run publishes it again): %w", r.Env, e.IdempotencyKey, err))
		}
	}
	return out, nil
}

// reconciledKey marks in the idempotency store that the reconcile job published the trigger
// keyed key: once published, a trigger is ingested or dead-lettered with its reason (karma dlq),
// never lost, so the job publishes it once. Published again on every run while ingest had not
// done it, it would be a trigger more in the audit log each time, naming a change that never
// comes, and — for one ingest cannot take (a runtime that is not a JSON object) — a dead letter
// more each time.
func reconciledKey(key string) string { return "reconcile|" + key }

func (r Reconciler) ingested(ctx context.Context, keys ...string) (bool, error) {
	for _, k := range keys {
		if done, err := r.Seen.Done(ctx, k); err != nil || done {
			return done, err
		}
	}
	return false, nil
}

// reconciledSource is the change source of a parameter of Karma's layout — parameter for a
// /config, runtime for a /runtime — or "" for any other parameter.
func reconciledSource(name, prefix string) string {
	rest, ok := strings.CutPrefix(name, strings.TrimSuffix(prefix, "/")+"/")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || !validRef(parts[0], parts[1]) {
		return ""
	}
	switch parts[2] {
	case "config":
		return message.SourceParameter
	case "runtime":
		return message.SourceRuntime
	}
	return ""
}
