package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/trigger"
)

// fromParameter makes the change of a parameter.changed: it reads the parameter's history —
// events say neither the value, the version nor who wrote it — and decides on the version
// written (the trigger's, else the current one) against the one before it. Duplicate and
// out-of-order events resolve to the same current version, whose key makes them one change.
func (w *Worker) fromParameter(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	var p message.ParameterChanged
	if err := message.Decode(in, &p); err != nil {
		return nil, err
	}
	switch {
	case !envRe.MatchString(in.Env):
		return nil, pipeline.Permanent(fmt.Errorf("ingest: parameter.changed %s of %s: env %q: want the environment whose parameter store holds it", in.ID, p.Name, in.Env))
	case p.Name == "":
		return nil, pipeline.Permanent(fmt.Errorf("ingest: parameter.changed %s: no parameter name", in.ID))
	case p.Operation != "Create" && p.Operation != "Update":
		return nil, nil // deletes and labels deploy nothing; the trigger stays in the audit log
	}
	if _, kind := componentOf(p.Name, w.Prefix); kind == "" {
		return nil, nil // not a component's config or runtime
	}
	versions, err := w.Parameters.History(ctx, in.Env, p.Name)
	if errors.Is(err, params.ErrNotFound) {
		return nil, nil // deleted since
	}
	if err != nil {
		return nil, pipeline.Transient(fmt.Errorf("ingest: reading the history of %s in %s: %w", p.Name, in.Env, err))
	}
	cur, prev, err := version(versions, p.Version, p.WrittenAt)
	if errors.Is(err, errGone) {
		return nil, nil // deleted since (and created again): the version named is no more
	}
	if err != nil {
		return nil, fmt.Errorf("ingest: parameter.changed %s of %s: %w", in.ID, p.Name, err)
	}
	_, kind := componentOf(p.Name, w.Prefix)
	base := prev // what cur is compared with
	if p.Version == 0 && w.Records != nil {
		if base, err = w.base(ctx, in.Env, kind, versions, cur); err != nil {
			return nil, err
		}
	}
	pc := parameterVersion{Prefix: w.Prefix, Name: p.Name, Version: cur.Version, ModifiedAt: cur.LastModified, ModifiedBy: cur.LastModifiedUser,
		Description: cur.Description, Value: []byte(cur.Value), AutoApprove: p.AutoApprove, KarmaWrote: params.IsKarmaVersion(*cur, prev)}
	pc.Secure = cur.Type == params.TypeSecureString
	pc.PreviousSecure = base != nil && base.Type == params.TypeSecureString
	if cur.Type != params.TypeSecureString && base != nil {
		pc.Previous = []byte(base.Value) // never compare or copy secret values: every key counts as changed
	}
	pc.Covers = covered(versions, base, cur)
	cd, actor, key, err := decide(pc)
	if err != nil || cd == nil {
		return nil, err
	}
	e, err := change(in, actor, in.Env, key, *cd)
	if err != nil {
		return nil, err
	}
	if w.Records != nil {
		pipeline.AfterPublish(ctx, func(ctx context.Context) error { // (see base)
			_, err := w.Records.RecordFirst(ctx, ingestedKey(in.Env, *cur), e.ID)
			return err
		})
	}
	return []message.Envelope{e}, nil
}

// base is the version a parameter's current version cur is compared with when the event named no
// version (EventBridge's do not): the latest earlier version whose change is known — ingested
// (recorded once its change was published), its change made by resolve or its trigger done by
// ingest (w.Seen), or written by Karma — rather than simply the one before. Events for v5 and v6
// handled after both were written both resolve to v6; compared with v5 alone, the keys v5
// changed in a runtime would be lost and their consumers never redeployed, and the writer of v5
// — whose edit the value of v6 deploys, a /config's too — named nowhere (covered). When no
// earlier version is known, the one before cur.
func (w *Worker) base(ctx context.Context, env, kind string, versions []params.Parameter, cur *params.Parameter) (*params.Parameter, error) {
	i := slices.IndexFunc(versions, func(v params.Parameter) bool { return v.Version == cur.Version })
	for k := i - 1; k >= 0; k-- {
		var before *params.Parameter
		if k > 0 {
			before = &versions[k-1]
		}
		if params.IsKarmaVersion(versions[k], before) {
			return &versions[k], nil
		}
		known, err := w.known(ctx, env, kind, versions[k])
		if err != nil {
			return nil, pipeline.Transient(fmt.Errorf("ingest: was version %d of %s ingested: %w", versions[k].Version, versions[k].Name, err))
		}
		if known {
			return &versions[k], nil
		}
	}
	if i > 0 {
		return &versions[i-1], nil
	}
	return nil, nil
}

// known reports whether version v's change is known: ingest recorded it (with its time of
// writing, or without, from before the time was kept), or — with w.Seen — resolve made its
// change or ingest did its trigger (the keys trigger.Reconciler asks about).
func (w *Worker) known(ctx context.Context, env, kind string, v params.Parameter) (bool, error) {
	for _, key := range []string{ingestedKey(env, v), ingestedKey(env, params.Parameter{Name: v.Name, Version: v.Version})} {
		rec, err := w.Records.Recorded(ctx, key)
		if err != nil || rec != "" {
			return rec != "", err
		}
	}
	if w.Seen == nil {
		return false, nil
	}
	source := message.SourceParameter
	if kind == "runtime" {
		source = message.SourceRuntime
	}
	for _, key := range []string{
		pipeline.StageResolve + "|" + message.ParameterVersionKey(source, v.Name, v.Version, v.LastModified),
		pipeline.StageIngest + "|" + message.ParameterChangedKey(message.ParameterChanged{Name: v.Name, Version: v.Version, WrittenAt: v.LastModified}),
		pipeline.StageResolve + "|" + message.ParameterVersionKey(source, v.Name, v.Version, time.Time{}),
		pipeline.StageIngest + "|" + message.ParameterChangedKey(message.ParameterChanged{Name: v.Name, Version: v.Version}),
	} {
		if done, err := w.Seen.Done(ctx, key); err != nil || done {
			return done, err
		}
	}
	return false, nil
}

// covered lists the versions strictly between base and cur, oldest first — versions written by
// others whose changes the change of cur carries because cur is compared with base — each with
// its modifier and the keys it changed against the version before it. Nil when base is the
// version just before cur (or nil).
func covered(versions []params.Parameter, base, cur *params.Parameter) []message.CoveredVersion {
	if base == nil {
		return nil
	}
	var out []message.CoveredVersion
	for k := range versions {
		v := versions[k]
		if v.Version <= base.Version || v.Version >= cur.Version {
			continue
		}
		cv := message.CoveredVersion{Version: v.Version, ModifiedBy: v.LastModifiedUser}
		if v.Type != params.TypeSecureString && k > 0 && versions[k-1].Type != params.TypeSecureString {
			if keys, err := ChangedKeys([]byte(versions[k-1].Value), []byte(v.Value)); err == nil {
				cv.ChangedKeys = keys // else not a JSON object: unknown (cur's own value is checked by decide)
			}
		}
		out = append(out, cv)
	}
	return out
}

// ingestedKey records that runtime parameter version v in env was ingested:
// "ingested:<env>:<name>@<version>@<written at>" (the time as message.ParameterVersionKey has it).
// A parameter deleted and created again starts again at version 1: keyed by number alone, its
// versions were taken for the versions of those numbers before the deletion, ingested — a base
// whose change was never published, and the keys changed since it lost. Records made before the
// time was added have none (v without LastModified); base still counts them, so a version
// ingested before the upgrade is not taken for unknown (and its keys carried again), at the
// price that, for a parameter created again, such a record is taken for its version of that
// number.
func ingestedKey(env string, v params.Parameter) string {
	key := fmt.Sprintf("ingested:%s:%s@%d", env, v.Name, v.Version)
	if !v.LastModified.IsZero() {
		key += "@" + v.LastModified.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	return key
}

// errGone: the version a trigger names, by its number and the time it was written, is no longer
// the parameter's: the parameter was deleted and created again since, and its versions of that
// number (if any) are others, with triggers of their own.
var errGone = errors.New("the version named was deleted")

// version picks the version written (want > 0; written at wantAt when that is known) or the
// current one, and the one before it (nil: none). A wanted version the history does not hold
// yet is transient (a read that does not see the write yet); one it no longer holds (Parameter
// Store keeps the last 100) is not. A wanted version of the number written at another time, or
// above the newest while the newest was written after wantAt, was deleted with the parameter:
// errGone. (A history that says no time tells no life from another: the number decides.)
func version(versions []params.Parameter, want int64, wantAt time.Time) (cur, prev *params.Parameter, err error) {
	if len(versions) == 0 {
		return nil, nil, pipeline.Transient(errors.New("no version in its history yet"))
	}
	i := len(versions) - 1
	if want > 0 {
		for i >= 0 && versions[i].Version != want {
			i--
		}
		newest := versions[len(versions)-1]
		switch {
		case i >= 0 && !wantAt.IsZero() && !versions[i].LastModified.IsZero() && !message.SameWriteTime(versions[i].LastModified, wantAt):
			return nil, nil, errGone
		case i < 0 && want > newest.Version && !wantAt.IsZero() && newest.LastModified.Truncate(time.Millisecond).After(wantAt.Truncate(time.Millisecond)):
			return nil, nil, errGone
		case i < 0 && want > newest.Version:
			return nil, nil, pipeline.Transient(fmt.Errorf("version %d is not in its history yet (newest: %d)", want, newest.Version))
		case i < 0:
			return nil, nil, pipeline.Permanent(fmt.Errorf("version %d is no longer in its history (oldest kept: %d)", want, versions[0].Version))
		}
	}
	if i > 0 {
		prev = &versions[i-1]
	}
	return &versions[i], prev, nil
}

// parameterVersion is one version of a parameter, as the decision needs it.
type parameterVersion struct {
	Prefix      string
	Name        string
	Version     int64
	ModifiedAt  time.Time // LastModified, when known (it tells a re-created parameter's versions apart)
	ModifiedBy  string    // LastModifiedUser, when known
	Description string    // the version's description (Karma's provenance, when Karma wrote it)
	// Value and Previous are the version's and the previous version's values (nil Previous:
	// everything is new).
	Value, Previous []byte
	AutoApprove     bool
	// Covers: the earlier versions this change also carries (covered).
	Covers []message.CoveredVersion
	// KarmaWrote: Karma wrote this version (params.IsKarmaVersion, which knows the version before).
	KarmaWrote bool
	// Secure and PreviousSecure: the version, or the one it is compared with, is a SecureString,
	// whose values are never recorded (RuntimeDiff).
	Secure, PreviousSecure bool
}

// componentOf places a parameter name in Karma's layout: the component and "config" or
// "runtime", or kind "" for any other parameter.
func componentOf(name, prefix string) (ref message.ComponentRef, kind string) {
	rest, ok := strings.CutPrefix(name, strings.TrimSuffix(prefix, "/")+"/")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || (parts[2] != "config" && parts[2] != "runtime") {
		return ref, ""
	}
	return message.ComponentRef{Type: parts[0], Nickname: parts[1]}, parts[2]
}

// decide makes the change of a parameter version — its payload, actor and idempotency key — or
// nil when Karma deploys nothing for it: a parameter outside <prefix>/<type>/<nickname>/
// {config,runtime}, or a value Karma itself wrote (its consequence is already under way).
func decide(pc parameterVersion) (*message.ChangeDetected, message.Actor, string, error) {
	ref, kind := componentOf(pc.Name, pc.Prefix)
	switch {
	case kind == "":
		return nil, message.Actor{}, "", nil
	case pc.Version <= 0:
		return nil, message.Actor{}, "", pipeline.Permanent(fmt.Errorf("ingest: parameter %s: version %d: want 1 or more", pc.Name, pc.Version))
	case !validRef(ref.Type, ref.Nickname):
		return nil, message.Actor{}, "", pipeline.Permanent(fmt.Errorf("ingest: parameter %s: %q is not a component type/nickname", pc.Name, ref.Type+"/"+ref.Nickname))
	case pc.KarmaWrote:
		return nil, message.Actor{}, "", nil
	}
	p := message.ChangeDetected{Source: message.SourceParameter, Components: []message.ComponentRef{ref},
		Parameter: &message.ParameterWrite{Name: pc.Name, Version: pc.Version, ModifiedBy: pc.ModifiedBy, WrittenAt: pc.ModifiedAt.UTC()}, Covers: pc.Covers, AutoApprove: pc.AutoApprove}
	if kind == "runtime" {
		p.Source = message.SourceRuntime
		keys, err := ChangedKeys(pc.Previous, pc.Value)
		if err != nil {
			return nil, message.Actor{}, "", pipeline.Permanent(fmt.Errorf("ingest: parameter %s version %d: %w", pc.Name, pc.Version, err))
		}
		p.ChangedKeys = keys
		p.RuntimeDiff = model.RuntimeDiff(pc.Previous, pc.Value, keys, pc.PreviousSecure, pc.Secure)
	}
	actor := message.Actor{Kind: "iam", Name: pc.ModifiedBy}
	if actor.Name == "" {
		actor.Name = trigger.UnknownModifier
	}
	return &p, actor, message.ParameterVersionKey(p.Source, pc.Name, pc.Version, pc.ModifiedAt), nil
}

// ChangedKeys lists the top-level keys whose value differs between two runtime documents.
func ChangedKeys(prev, cur []byte) ([]string, error) {
	var a, b map[string]json.RawMessage
	if len(prev) > 0 {
		if err := json.Unmarshal(prev, &a); err != nil {
			a = nil // a previous bare-string runtime: everything is new
		}
	}
	if err := json.Unmarshal(cur, &b); err != nil {
		return nil, fmt.Errorf("runtime is not a JSON object: %w", err)
	}
	var keys []string
	for k := range b {
		if k == "" {
			return nil, errors.New("runtime has an empty key")
		}
	}
	for k, v := range b {
		if old, ok := a[k]; !ok || !model.SameJSON(old, v) {
			keys = append(keys, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if keys == nil {
		keys = []string{}
	}
	return keys, nil
}
