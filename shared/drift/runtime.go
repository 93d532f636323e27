package drift

import (
	"fmt"
	"strings"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
)

// compareRuntime judges a component's /runtime (p, nil when missing) by Karma's provenance: a
// value whose description is Karma's provenance for exactly that value is what Karma published.
// Only components Karma deployed are judged — known from the change sets (last), or from the
// provenance of their runtime or config (a deployment's writes name it) — so that a runtime
// nobody expects Karma to own is not drift. cfg is the component's /config, nil when missing.
func compareRuntime(in Inputs, c *model.Component, p, cfg *params.Parameter, last Deployment, hasLast bool) *Finding {
	name := model.RuntimeParam(in.Prefix, c.Type, c.Nickname)
	f := &Finding{Env: in.Env, DriftDetected: message.DriftDetected{Component: c.ID(), Kind: message.DriftRuntime, Commit: in.Commit}}
	if hasLast {
		f.Expected = last.RuntimeHash[:min(len(last.RuntimeHash), 16)]
	}
	if p == nil {
		dep := last.ID
		if !hasLast && cfg != nil {
			dep = deployedBy(cfg.Description)
		}
		if dep == "" {
			return nil // never deployed by Karma: no runtime expected
		}
		f.Reason = message.DriftMissing
		f.Detail = fmt.Sprintf("%s is missing, though Karma deployed %s (%s)", name, c.ID(), dep)
		f.identify(last.ID)
		return f
	}
	if params.IsKarmaWrite(p.Description, p.Value) {
		return nil
	}
	prov, karmas := params.ProvenanceHash(p.Description)
	if !karmas && !hasLast {
		return nil // Karma never published this runtime
	}
	if karmas {
		f.Expected = prov // what Karma last wrote to this parameter
	}
	f.Reason, f.Found = message.DriftDiffers, params.ValueHash(p.Value)
	f.Parameter = &message.ParameterVersion{Name: p.Name, Version: p.Version, ModifiedBy: p.LastModifiedUser}
	f.Detail = fmt.Sprintf("%s version %d%s is not what Karma published%s", name, p.Version, by(p.LastModifiedUser), publishedBy(p.Description, last, hasLast))
	if hasLast && f.Expected == last.RuntimeHash[:min(len(last.RuntimeHash), 16)] {
		if was, err := decodeJSON(last.Runtime); err == nil {
			if now, err := decodeJSON([]byte(p.Value)); err == nil {
				f.Detail += ": " + differ(topLevelDiff(was, now))
			}
		}
	}
	f.identify(last.ID)
	return f
}

// deployedBy is the deployment a Karma provenance description names ("karma: deployment=<id>
// change=…"), "" when it names none.
func deployedBy(description string) string {
	rest, ok := strings.CutPrefix(description, "karma: deployment=")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, " ")
	return id
}

func publishedBy(description string, last Deployment, hasLast bool) string {
	if dep := deployedBy(description); dep != "" {
		return " (" + dep + ")"
	}
	if hasLast {
		return " (" + last.ID + ")"
	}
	return ""
}
