// Package references resolves a component's references to upstream runtimes for the plan and
// apply stages: at the versions the deployment's lineage names, with errors sorted for
// pipeline.Classify.
package references

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
)

// Interpolate substitutes the references of node's config with its upstreams' runtimes (as
// model.InterpolateFromStore does) — each at the version its deployment in change set cs
// published, when it was deployed there: the dependent was scheduled because that deployment
// changed a key it consumes, so its lineage names that version, and a runtime written since (a
// `karma params put`, another change) is not what it deploys; the change that wrote it
// redeploys the dependent in turn. Other upstreams are read as they are now.
//
// The version's number alone does not name the document: a runtime deleted and created again
// since starts again at version 1, and its version of that number is another write. The
// version read must be the document the deployment published (its Outcome.RuntimeHash, the
// SHA-256 of the value written); another is refused — the deployment fails, naming both —
// rather than planned or applied under a lineage naming the upstream's deployment.
//
// What the config or the runtimes get wrong (a runtime not published, a key it does not have,
// not JSON, a version no longer kept) is permanent — the deployment fails; a read Parameter
// Store failed to answer (throttled, timed out, unreachable) is left as the store reported it,
// which Classify retries unless the store marked it permanent.
func Interpolate(ctx context.Context, store params.Store, prefix string, cs *changeset.ChangeSet, node *changeset.Node) (model.Interpolated, error) {
	pins := map[string]*changeset.Node{} // "<type>/<nickname>" -> its deployment, which published a runtime version
	for _, u := range node.Upstreams {
		if un := cs.Nodes[u.Component]; un != nil && un.Outcome != nil && un.Outcome.RuntimeVersion > 0 {
			pins[strings.TrimPrefix(u.Component, cs.Env+"/")] = un
		}
	}
	r := &reads{Store: store}
	cfg, err := model.InterpolateRuntimes(node.Config, func(ref string) (model.Runtime, error) {
		if un, ok := pins[ref]; ok {
			return r.version(ctx, prefix, ref, un)
		}
		return model.ReadRuntime(ctx, r, prefix, ref)
	})
	if err != nil && !r.failed {
		return cfg, pipeline.Permanent(err)
	}
	return cfg, err
}

// reads is a store that notes whether a read failed otherwise than "not found".
type reads struct {
	params.Store
	failed bool
}

func (r *reads) Get(ctx context.Context, name string) (params.Parameter, error) {
	p, err := r.Store.Get(ctx, name)
	r.note(err)
	return p, err
}

func (r *reads) note(err error) {
	if err != nil && !errors.Is(err, params.ErrNotFound) {
		r.failed = true
	}
}

// version reads the runtime version of ref that its deployment un published (params.GetVersion),
// and checks it is the document published (Outcome.RuntimeHash; an outcome without one, recorded
// before it was kept, is taken by its number).
func (r *reads) version(ctx context.Context, prefix, ref string, un *changeset.Node) (model.Runtime, error) {
	t, n, _ := strings.Cut(ref, "/")
	name := model.RuntimeParam(prefix, t, n)
	v := un.Outcome.RuntimeVersion
	p, err := params.GetVersion(ctx, r, name, v)
	switch {
	case errors.Is(err, params.ErrNotFound):
		return model.Runtime{}, fmt.Errorf("%s has no runtime (%s), though its deployment published version %d: it was deleted since", ref, name, v)
	case errors.Is(err, params.ErrVersionGone):
		return model.Runtime{}, fmt.Errorf("%s: the runtime its deployment published is gone: %w", ref, err)
	case err != nil:
		return model.Runtime{}, err
	}
	if want := un.Outcome.RuntimeHash; want != "" {
		if sum := sha256.Sum256([]byte(p.Value)); hex.EncodeToString(sum[:]) != want {
			// (hashes only: the value may be a secret)
			return model.Runtime{}, fmt.Errorf("%s: version %d of %s is not the runtime deployment %s published (sha256 %.16s…, found %.16s…): the parameter was deleted and created again since",
				ref, v, name, un.DeploymentID, want, hex.EncodeToString(sum[:]))
		}
	}
	return model.RuntimeFrom(ref, p)
}

// History passes the store's history on (GetVersion reads it through reads), noting a failure.
func (r *reads) History(ctx context.Context, name string) ([]params.Parameter, error) {
	h, ok := r.Store.(params.Historian)
	if !ok {
		return nil, fmt.Errorf("%s: this parameter store keeps no history: %w", name, params.ErrVersionGone)
	}
	out, err := h.History(ctx, name)
	r.note(err)
	return out, err
}
