package message_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/usekarma/karma/shared/message"
)

// The contract files live at the repository root: schemas/<type>.v<N>.schema.json, each
// referring to schemas/envelope.schema.json, and one golden envelope per type and version in
// schemas/golden/<type>.v<N>.json.
const (
	schemaDir    = "../../schemas"
	schemaBase   = "https://usekarma.dev/schemas/"
	envelopeFile = "envelope.schema.json"
)

func schemaFile(typ string, v int) string { return fmt.Sprintf("%s.v%d.schema.json", typ, v) }
func goldenFile(typ string, v int) string { return fmt.Sprintf("%s.v%d.json", typ, v) }

// newest returns a pointer to the Go type of the newest version of each message type: what
// message.Decode decodes into.
var newest = map[string]func() any{
	message.TypeChangeDetected:      func() any { return new(message.ChangeDetected) },
	message.TypeChangeResolved:      func() any { return new(message.ChangeResolved) },
	message.TypeDeploymentScheduled: func() any { return new(message.DeploymentScheduled) },
	message.TypeDeploymentSkipped:   func() any { return new(message.DeploymentSkipped) },
	message.TypeDeploymentRecorded:  func() any { return new(message.DeploymentRecorded) },
	message.TypeDeploymentPlanned:   func() any { return new(message.DeploymentPlanned) },
	message.TypeDeploymentApproved:  func() any { return new(message.DeploymentApproved) },
	message.TypeDeploymentApplied:   func() any { return new(message.DeploymentApplied) },
	message.TypeDeploymentFailed:    func() any { return new(message.DeploymentFailed) },
	message.TypeChangeSuperseded:    func() any { return new(message.ChangeSuperseded) },
	message.TypeChangeRejected:      func() any { return new(message.ChangeRejected) },
	message.TypeDriftDetected:       func() any { return new(message.DriftDetected) },
	message.TypeChangeExpired:       func() any { return new(message.ChangeExpired) },
	message.TypeGitPushed:           func() any { return new(message.GitPushed) },
	message.TypeParameterChanged:    func() any { return new(message.ParameterChanged) },
}

// goTypes is the Go type of every supported type and version (old versions included).
func goTypes() map[string]reflect.Type {
	m := map[string]reflect.Type{
		schemaFile(message.TypeChangeDetected, 1):     reflect.TypeFor[message.ChangeDetectedV1](),
		schemaFile(message.TypeChangeDetected, 2):     reflect.TypeFor[message.ChangeDetectedV2](),
		schemaFile(message.TypeChangeDetected, 3):     reflect.TypeFor[message.ChangeDetectedV3](),
		schemaFile(message.TypeChangeResolved, 1):     reflect.TypeFor[message.ChangeResolvedV1](),
		schemaFile(message.TypeDeploymentPlanned, 1):  reflect.TypeFor[message.DeploymentPlannedV1](),
		schemaFile(message.TypeDeploymentApproved, 1): reflect.TypeFor[message.DeploymentApprovedV1](),
	}
	for typ, mk := range newest {
		m[schemaFile(typ, message.Latest[typ])] = reflect.TypeOf(mk()).Elem()
	}
	return m
}

type typeVersion struct {
	typ string
	v   int
}

func (tv typeVersion) String() string { return fmt.Sprintf("%s.v%d", tv.typ, tv.v) }

// supported lists message.Supported in a stable order.
func supported() []typeVersion {
	var out []typeVersion
	for typ, vs := range message.Supported {
		for _, v := range vs {
			out = append(out, typeVersion{typ, v})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].typ != out[j].typ {
			return out[i].typ < out[j].typ
		}
		return out[i].v < out[j].v
	})
	return out
}

func readJSON(t testing.TB, path string) any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// compileSchemas loads every schemas/*.schema.json under its $id (so that relative $refs to
// envelope.schema.json resolve without any network or file loader) and compiles each.
func compileSchemas(t testing.TB) map[string]*jsonschema.Schema {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(schemaDir, "*.schema.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas in %s: %v", schemaDir, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{}) // every $ref must resolve among the files added below
	for _, f := range files {
		doc := readJSON(t, f)
		name := filepath.Base(f)
		obj, _ := doc.(map[string]any)
		if id, _ := obj["$id"].(string); id != schemaBase+name {
			t.Errorf("%s: $id = %q, want %q", name, id, schemaBase+name)
		}
		if s, _ := obj["$schema"].(string); s != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema = %q, want draft 2020-12", name, s)
		}
		if err := c.AddResource(schemaBase+name, doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, f := range files {
		name := filepath.Base(f)
		sch, err := c.Compile(schemaBase + name)
		if err != nil {
			t.Fatalf("compile %s: %v", name, err)
		}
		out[name] = sch
	}
	return out
}

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema %s is not among schemas/*.schema.json", url)
}

func TestSupportedAndLatestAgree(t *testing.T) {
	for typ, vs := range message.Supported {
		if len(vs) == 0 {
			t.Errorf("%s: no supported version", typ)
			continue
		}
		if l, ok := message.Latest[typ]; !ok || l != slices.Max(vs) {
			t.Errorf("%s: Latest = %d, want the highest supported version %d", typ, l, slices.Max(vs))
		}
		if newest[typ] == nil {
			t.Errorf("%s: the test has no Go type for it (add it to newest)", typ)
		}
	}
	for typ := range message.Latest {
		if _, ok := message.Supported[typ]; !ok {
			t.Errorf("%s: in Latest but not in Supported", typ)
		}
	}
}

// TestGoldens checks, for every supported type and version, that its schema and golden exist,
// the golden validates, Parse accepts it, Decode gives the newest Go type, and (newest
// versions) re-encoding the decoded payload gives the golden's payload back.
func TestGoldens(t *testing.T) {
	schemas := compileSchemas(t)
	for _, tv := range supported() {
		t.Run(tv.String(), func(t *testing.T) {
			sch := schemas[schemaFile(tv.typ, tv.v)]
			if sch == nil {
				t.Fatalf("no schema schemas/%s", schemaFile(tv.typ, tv.v))
			}
			path := filepath.Join(schemaDir, "golden", goldenFile(tv.typ, tv.v))
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("no golden: %v", err)
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(doc); err != nil {
				t.Fatalf("golden does not validate against its schema:\n%v", err)
			}

			e, err := message.Parse(raw)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if e.Type != tv.typ || e.Version != tv.v {
				t.Fatalf("golden is %s v%d, want %s", e.Type, e.Version, tv)
			}
			checkEnvelopeIDs(t, e)

			out := newest[tv.typ]()
			if err := message.Decode(e, out); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if want := idempotencyKey(t, e, out); e.IdempotencyKey != want {
				t.Errorf("idempotency_key = %q, want %q (docs/messages.md)", e.IdempotencyKey, want)
			}

			if tv.v == message.Latest[tv.typ] {
				again, err := json.Marshal(out)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := asAny(t, again), asAny(t, e.Payload); !reflect.DeepEqual(got, want) {
					t.Errorf("decoded and re-encoded payload differs from the golden:\n got %s\nwant %s", again, e.Payload)
				}
			}
			if tv.typ == message.TypeChangeDetected && tv.v == 1 {
				var v1 message.ChangeDetectedV1
				if err := json.Unmarshal(e.Payload, &v1); err != nil {
					t.Fatal(err)
				}
				cd := out.(*message.ChangeDetected)
				if cd.ChangeSetID != e.CorrelationID {
					t.Errorf("upcast change_set_id = %q, want the correlation id %q", cd.ChangeSetID, e.CorrelationID)
				}
				if want := []message.ComponentRef{v1.Component}; !reflect.DeepEqual(cd.Components, want) {
					t.Errorf("upcast components = %v, want %v", cd.Components, want)
				}
				if cd.Source != v1.Source || !sameParameter(cd.Parameter, v1.Parameter) ||
					!sameCommit(cd.Commit, v1.Commit) || cd.AutoApprove != v1.AutoApprove {
					t.Errorf("upcast lost a v1 field: %+v from %+v", cd, v1)
				}
			}
			if (tv.typ == message.TypeDeploymentPlanned || tv.typ == message.TypeDeploymentApproved) && tv.v == 1 {
				checkPlanUpcast(t, e, out)
			}
			if tv.typ == message.TypeChangeDetected && tv.v == 3 {
				var v3 message.ChangeDetectedV3
				if err := json.Unmarshal(e.Payload, &v3); err != nil {
					t.Fatal(err)
				}
				cd := out.(*message.ChangeDetected)
				if cd.ChangeSetID != v3.ChangeSetID || cd.Source != v3.Source || !reflect.DeepEqual(cd.Files, v3.Files) || cd.Truncated != v3.Truncated ||
					!sameCommitV3(cd.Commit, v3.Commit) || cd.AutoApprove != v3.AutoApprove || cd.Rollback != nil || cd.Promotion != nil {
					t.Errorf("upcast changed a v3 field: %+v from %+v", cd, v3)
				}
			}
			if tv.typ == message.TypeChangeDetected && tv.v == 2 {
				var v2 message.ChangeDetectedV2
				if err := json.Unmarshal(e.Payload, &v2); err != nil {
					t.Fatal(err)
				}
				cd := out.(*message.ChangeDetected)
				if cd.ChangeSetID != v2.ChangeSetID || cd.Source != v2.Source || !reflect.DeepEqual(cd.Files, v2.Files) ||
					!sameCommit(cd.Commit, v2.Commit) || cd.AutoApprove != v2.AutoApprove || cd.Truncated {
					t.Errorf("upcast lost a v2 field: %+v from %+v", cd, v2)
				}
			}
		})
	}
}

// TestGoldensMatchOnlyTheirSchema guards against vacuous schemas: a golden must fail every
// other type's or version's schema, and must fail its own once its payload has an extra field.
func TestGoldensMatchOnlyTheirSchema(t *testing.T) {
	schemas := compileSchemas(t)
	for _, tv := range supported() {
		doc := readJSON(t, filepath.Join(schemaDir, "golden", goldenFile(tv.typ, tv.v)))
		for _, other := range supported() {
			if other == tv {
				continue
			}
			if err := schemas[schemaFile(other.typ, other.v)].Validate(doc); err == nil {
				t.Errorf("golden %s validates against the schema of %s", tv, other)
			}
		}
		extra := readJSON(t, filepath.Join(schemaDir, "golden", goldenFile(tv.typ, tv.v))).(map[string]any)
		extra["payload"].(map[string]any)["not_in_the_schema"] = true
		if err := schemas[schemaFile(tv.typ, tv.v)].Validate(extra); err == nil {
			t.Errorf("%s: schema accepts an unknown payload field", tv)
		}
		if err := schemas[envelopeFile].Validate(doc); err != nil {
			t.Errorf("%s: golden does not validate against the envelope schema: %v", tv, err)
		}
	}
}

// TestGoldenStory checks the goldens tell one consistent story: roots correlate to themselves,
// but a trigger, which correlates to the change it starts (a golden change.detected root that
// happened after it); a golden caused by another golden shares its correlation and happened
// after it.
func TestGoldenStory(t *testing.T) {
	byID := map[string]message.Envelope{}
	for _, tv := range supported() {
		raw, err := os.ReadFile(filepath.Join(schemaDir, "golden", goldenFile(tv.typ, tv.v)))
		if err != nil {
			t.Fatal(err)
		}
		e, err := message.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", tv, err)
		}
		if _, dup := byID[e.ID]; dup {
			t.Errorf("%s: id %s used by two goldens", tv, e.ID)
		}
		byID[e.ID] = e
	}
	for _, e := range byID {
		if e.Type == message.TypeGitPushed || e.Type == message.TypeParameterChanged {
			change, ok := byID[e.CorrelationID]
			switch {
			case e.CausationID != "" || e.CorrelationID == e.ID:
				t.Errorf("%s: a trigger has no cause and correlates to the change it starts, not to itself", e.Type)
			case !ok || change.Type != message.TypeChangeDetected || change.CausationID != "" || !change.OccurredAt.After(e.OccurredAt):
				t.Errorf("%s: correlation %s is not a golden change.detected root made after it", e.Type, e.CorrelationID)
			}
			continue
		}
		if e.CausationID == "" {
			if e.CorrelationID != e.ID {
				t.Errorf("%s v%d is a root but correlation_id %s != id %s", e.Type, e.Version, e.CorrelationID, e.ID)
			}
			continue
		}
		if cause, ok := byID[e.CausationID]; ok {
			if cause.CorrelationID != e.CorrelationID {
				t.Errorf("%s v%d: correlation %s, its cause %s has %s", e.Type, e.Version, e.CorrelationID, cause.Type, cause.CorrelationID)
			}
			if e.OccurredAt.Before(cause.OccurredAt) {
				t.Errorf("%s v%d happened before its cause %s", e.Type, e.Version, cause.Type)
			}
		}
	}
}

// checkPlanUpcast: a v1 plan (or approval) keeps every field, lists no resources and says so.
func checkPlanUpcast(t *testing.T, e message.Envelope, out any) {
	t.Helper()
	var v1 message.DeploymentPlannedV1
	if err := json.Unmarshal(e.Payload, &v1); err != nil {
		t.Fatal(err)
	}
	var p message.DeploymentPlanned
	switch o := out.(type) {
	case *message.DeploymentPlanned:
		p = *o
	case *message.DeploymentApproved:
		p = o.DeploymentPlanned
		if o.ApprovedBy == "" {
			t.Errorf("upcast lost approved_by")
		}
	}
	if !reflect.DeepEqual(p.DeploymentScheduled, v1.DeploymentScheduled) || p.Plan != v1.Plan || p.PlanFile != v1.PlanFile || p.PlanHash != v1.PlanHash {
		t.Errorf("upcast lost a v1 field: %+v from %+v", p, v1)
	}
	if len(p.Resources) != 0 || !p.ResourcesTruncated {
		t.Errorf("upcast v1 plan: resources %v, truncated %v; want none, truncated", p.Resources, p.ResourcesTruncated)
	}
}

// sameParameter: an upcast parameter keeps every field, and says no time of writing (older
// versions have none).
func sameParameter(p *message.ParameterWrite, old *message.ParameterVersion) bool {
	if p == nil || old == nil {
		return p == nil && old == nil
	}
	return p.Name == old.Name && p.Version == old.Version && p.ModifiedBy == old.ModifiedBy && p.WrittenAt.IsZero()
}

func sameCommitV3(c *message.Commit, old *message.CommitV3) bool {
	if c == nil || old == nil {
		return c == nil && old == nil
	}
	return c.SHA == old.SHA && c.Author == old.Author && c.Message == old.Message && c.Branch == old.Branch && c.Repo == old.Repo &&
		c.Before == old.Before && c.Pusher == "" && c.Authors == nil
}

func sameCommit(c *message.Commit, old *message.CommitV2) bool {
	if c == nil || old == nil {
		return c == nil && old == nil
	}
	return c.SHA == old.SHA && c.Author == old.Author && c.Message == old.Message && c.Branch == old.Branch && c.Repo == old.Repo && c.Before == ""
}

func checkEnvelopeIDs(t *testing.T, e message.Envelope) {
	t.Helper()
	id, err := uuid.Parse(e.ID)
	if err != nil || id.Version() != 7 {
		t.Errorf("id %q is not a UUIDv7 (%v)", e.ID, err)
	} else if sec, nsec := id.Time().UnixTime(); sec*1000+nsec/1e6 != e.OccurredAt.UnixMilli() {
		t.Errorf("id %s encodes %d ms, occurred_at is %d ms", e.ID, sec*1000+nsec/1e6, e.OccurredAt.UnixMilli())
	}
	for name, v := range map[string]string{"correlation_id": e.CorrelationID, "causation_id": e.CausationID} {
		if v == "" && name == "causation_id" {
			continue
		}
		if u, err := uuid.Parse(v); err != nil || u.Version() != 7 {
			t.Errorf("%s %q is not a UUIDv7 (%v)", name, v, err)
		}
	}
}

// idempotencyKey is the key docs/messages.md prescribes for a decoded message.
func idempotencyKey(t *testing.T, e message.Envelope, payload any) string {
	t.Helper()
	switch p := payload.(type) {
	case *message.ChangeDetected:
		switch {
		case p.Source == message.SourceDrift:
			return "drift:" + message.DriftSetKey(p.Drift)
		case p.Promotion != nil:
			return "promotion:" + p.Promotion.From // one promotion per change set promoted from
		case p.Rollback != nil:
			return "rollback:" + p.ChangeSetID
		case p.Commit != nil && (p.Source == message.SourceGit || p.Source == message.SourceRequest):
			return "git:" + p.Commit.SHA // a request's commit is one change, however it arrives
		case p.Parameter != nil && !p.Parameter.WrittenAt.IsZero():
			return p.Source + ":" + p.Parameter.Name + "@" + strconv.FormatInt(p.Parameter.Version, 10) + "@" + p.Parameter.WrittenAt.UTC().Format("2006-01-02T15:04:05.000Z")
		case p.Parameter != nil:
			return p.Source + ":" + p.Parameter.Name + "@" + strconv.FormatInt(p.Parameter.Version, 10)
		case p.Request != nil:
			return p.Source + ":" + p.Request.ID
		}
		t.Fatalf("change.detected without commit, parameter or request")
	case *message.ChangeResolved:
		return "resolved:" + p.ChangeSetID
	case *message.ChangeSuperseded:
		return e.Type + ":" + p.ChangeSetID
	case *message.ChangeRejected:
		return e.Type + ":" + p.ChangeSetID
	case *message.DriftDetected:
		return e.Type + ":" + p.DriftID
	case *message.ChangeExpired:
		return e.Type + ":" + p.ChangeSetID
	case *message.GitPushed:
		return "git.pushed:" + p.Commit.SHA
	case *message.ParameterChanged:
		if p.Version > 0 && !p.WrittenAt.IsZero() {
			return "parameter.changed:" + p.Name + "@" + strconv.FormatInt(p.Version, 10) + "@" + p.WrittenAt.UTC().Format("2006-01-02T15:04:05.000Z")
		}
		if p.Version > 0 {
			return "parameter.changed:" + p.Name + "@" + strconv.FormatInt(p.Version, 10)
		}
		return "parameter.changed:" + p.Name + "@event:" + p.EventID
	case *message.DeploymentSkipped:
		return e.Type + ":" + p.ChangeSetID + "/" + p.Component
	case *message.DeploymentApproved:
		if e.Version >= 2 { // an approval approves one plan
			return message.ApprovalKey(p.DeploymentPlanned)
		}
	}
	v := reflect.ValueOf(payload).Elem()
	if f := v.FieldByName("DeploymentID"); f.IsValid() {
		return e.Type + ":" + f.String()
	}
	t.Fatalf("no idempotency key rule for %T", payload)
	return ""
}

func asAny(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

// TestNoStraySchemas: every file under schemas/ is the envelope schema, or the schema or
// golden of a supported type and version.
func TestNoStraySchemas(t *testing.T) {
	want := map[string]bool{envelopeFile: true}
	for _, tv := range supported() {
		want[schemaFile(tv.typ, tv.v)] = true
		want["golden/"+goldenFile(tv.typ, tv.v)] = true
	}
	err := filepath.WalkDir(schemaDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(schemaDir, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && rel != "golden" {
				t.Errorf("schemas/%s: unexpected directory", rel)
				return filepath.SkipDir
			}
			return nil
		}
		if !want[rel] {
			t.Errorf("schemas/%s: stray file: not the schema or golden of a supported type and version (message.Supported)", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fullPayloads holds a value of the newest Go type of every message type with every field set
// (checked by TestFullPayloadsAreFull), so that the schemas are checked against everything the
// Go types can carry.
func fullPayloads() map[string]any {
	const (
		root = "019cebab-87be-76cd-9c22-2d20c23174d0"
		cs   = root + "/prod" // the change set of a root that concerned several environments
		dep  = "dep-9380611eaf9e90af"
		sha  = "9f3c2a71e4b05d8c6a1f7e2b3d4c5a6978e1f0ab"
		hash = "3b5d5c3712955042212316173ccf37be800e4a5d1e5ea5e1e5bd1a2c5f2c8d1e"
	)
	expires := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	sched := message.DeploymentScheduled{
		ChangeSetID: cs, DeploymentID: dep, Component: "prod/ecs-service/api", Wave: 2,
		CausedBy: []message.Cause{
			// Every field set at once (trigger is only ever set on a deployment cause).
			{Kind: message.CauseCommit, ID: sha, Keys: []string{"unused"}, Trigger: message.TriggerOnAnyApply},
			{Kind: message.CauseDeployment, ID: "dep-54373ce93bae19f9", Keys: []string{"private_subnet_ids"}, Trigger: message.TriggerOnAnyApply},
			{Kind: message.CauseRetry, ID: "dep-0a1b2c3d4e5f6071", Keys: []string{}, Trigger: message.TriggerOnAnyApply},
			{Kind: message.CauseRollback, ID: "dep-1a2b3c4d5e6f7081", Keys: []string{}, Trigger: message.TriggerOnAnyApply},
			{Kind: message.CausePromotion, ID: root + "/dev", Keys: []string{}, Trigger: message.TriggerOnAnyApply},
			{Kind: message.CauseDrift, ID: "drift-4f1c9e20b7a35d68", Keys: []string{}, Trigger: message.TriggerOnAnyApply},
		},
		ConfigHash: hash, Destroy: true,
	}
	planned := message.DeploymentPlanned{
		DeploymentScheduled: sched,
		Plan:                message.PlanSummary{Add: 1, Change: 2, Destroy: 3, NoOp: 4},
		PlanFile:            "s3://acme-karma-plans/prod/ecs-service/api/" + dep + ".tfplan",
		PlanHash:            hash,
		// Every field set at once (values and values_omitted never are, in a real plan).
		Resources: []message.ResourceChange{{Address: "aws_subnet.private[0]", Actions: []string{"delete", "create"},
			Before: map[string]any{"cidr_block": "10.0.0.0/20"}, After: map[string]any{"cidr_block": "10.0.0.0/20", "tags": map[string]any{"Tier": "private"}},
			ValuesOmitted: true}},
		ResourcesTruncated: true,
	}
	return map[string]any{
		message.TypeChangeDetected: message.ChangeDetected{
			ChangeSetID: root, Source: message.SourceGit,
			Components: []message.ComponentRef{{Type: "vpc", Nickname: "core"}, {Type: "ecs-service", Nickname: "api"}},
			Truncated:  true,
			Commit: &message.Commit{SHA: sha, Author: "Ada Lovelace <ada@example.com>", Message: "m", Branch: "main", Repo: "acme/infrastructure", Before: sha,
				Pusher: "Grace Hopper <grace@example.com>", Authors: []string{"Ada Lovelace <ada@example.com>", "Bob <bob@example.com>"}},
			Parameter: &message.ParameterWrite{Name: "/iac/vpc/core/runtime", Version: 8, ModifiedBy: "karma",
				WrittenAt: time.Date(2026, 12, 5, 10, 9, 44, 20e6, time.UTC)},
			ChangedKeys: []string{"private_subnet_ids"},
			Covers:      []message.CoveredVersion{{Version: 7, ModifiedBy: "arn:aws:iam::1:user/bob", ChangedKeys: []string{"vpc_id"}}},
			RuntimeDiff: []message.KeyChange{{Key: "private_subnet_ids", Op: "change", Before: `["subnet-1"]`, After: `["subnet-1","subnet-2"]`}},
			Files:       []string{"iac/_base/vpc/core/config.json", "iac/prod/vpc/core/config.json"},
			Request: &message.ChangeRequest{ID: "cr-0042", Configs: map[string]string{
				"vpc/core": `{"cidr_block":"10.0.0.0/16"}`}},
			Removed:     []message.ComponentRef{{Type: "s3-bucket", Nickname: "old-assets"}},
			Drift:       []string{"drift-4f1c9e20b7a35d68"},
			AutoApprove: true,
			Rollback: &message.Rollback{DeploymentID: dep, ChangeSetID: root + "/dev", Commit: sha, ConfigHash: hash,
				Replaces: "dep-54373ce93bae19f9"},
			Promotion: &message.Promotion{From: root + "/dev", FromEnv: "dev", Soak: "10m",
				SoakSkipped: &message.GateSkip{By: "grace.hopper", Reason: "verified in dev"}, Attempt: 2},
			Retry: &message.HeldRetry{Attempt: 2},
		},
		message.TypeChangeResolved: message.ChangeResolved{
			ChangeSetID: cs, Source: message.SourceGit, RootCauses: []message.Cause{{Kind: message.CauseCommit, ID: sha, Keys: []string{"every field set"}, Trigger: message.TriggerOnAnyApply},
				{Kind: message.CauseRollback, ID: dep, Keys: []string{}, Trigger: message.TriggerOnAnyApply}, {Kind: message.CausePromotion, ID: root + "/dev", Keys: []string{}, Trigger: message.TriggerOnAnyApply},
				{Kind: message.CauseDrift, ID: "drift-4f1c9e20b7a35d68", Keys: []string{}, Trigger: message.TriggerOnAnyApply}},
			Roots:        []string{"prod/vpc/core"},
			Affected:     []string{"prod/vpc/core", "prod/ecs-service/api"},
			Waves:        [][]string{{"prod/vpc/core"}, {"prod/ecs-service/api"}},
			Commit:       sha,
			QueuedBehind: []string{"019ceba9-1111-7aaa-8bbb-0123456789ab/prod"},
			Rejected:     "cycle: prod/vpc/core -> prod/ecs-service/api -> prod/vpc/core",
			Held:         "promotion held: prod was deployed since at a later commit holding a change not through dev",
			Approval: &message.ApprovalRules{Protected: true, Required: 2, ExpiresAt: &expires, Author: "Ada Lovelace <ada@example.com>",
				AutoApproveRefused: "auto-approve was asked for and refused: environment prod is protected; the change waits for 2 approvals"},
		},
		message.TypeDeploymentScheduled: sched,
		message.TypeDeploymentSkipped: message.DeploymentSkipped{
			ChangeSetID: cs, Component: "prod/ecs-cluster/core", Reason: "upstream-failed", Detail: "prod/vpc/core failed",
		},
		message.TypeDeploymentRecorded: message.DeploymentRecorded{DeploymentScheduled: sched},
		message.TypeDeploymentPlanned:  planned,
		message.TypeDeploymentApproved: message.DeploymentApproved{DeploymentPlanned: planned, ApprovedBy: "grace.hopper"},
		message.TypeDeploymentApplied: message.DeploymentApplied{
			ChangeSetID: cs, DeploymentID: dep, Component: "prod/vpc/core", Wave: 1, RuntimeVersion: 9,
			ChangedKeys: []string{"private_subnet_ids"}, RuntimeHash: hash,
		},
		message.TypeDeploymentFailed: message.DeploymentFailed{
			ChangeSetID: cs, DeploymentID: dep, Component: "prod/vpc/core", Wave: 1, Stage: "apply", Error: "boom",
		},
		message.TypeChangeSuperseded: message.ChangeSuperseded{ChangeSetID: cs, SupersededBy: root + "/dev", Commit: sha},
		message.TypeChangeRejected:   message.ChangeRejected{ChangeSetID: cs, Reason: "wrong account"},
		message.TypeDriftDetected: message.DriftDetected{
			DriftID: "drift-4f1c9e20b7a35d68", Component: "prod/vpc/core", Kind: message.DriftInfrastructure, Reason: message.DriftRefreshed,
			Detail: "a refresh-only plan changed 1 resource", Commit: sha,
			Parameter: &message.ParameterVersion{Name: "/iac/vpc/core/config", Version: 4, ModifiedBy: "arn:aws:iam::123456789012:user/ops"},
			Expected:  hash, Found: hash[:16],
			Resources: []message.DriftResource{{Address: "module.component.aws_vpc.this", Actions: []string{"update"}}},
			Outputs:   []string{"vpc_id"},
			State:     &message.StateVersion{Serial: 7, Lineage: "5b0f2a4c-1d2e-4f3a-8b9c-0d1e2f3a4b5c"},
			Action:    message.DriftCorrect, ChangeSetID: root,
		},
		message.TypeChangeExpired: message.ChangeExpired{ChangeSetID: cs, ExpiresAt: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)},
		message.TypeGitPushed: message.GitPushed{
			Commit: message.Commit{SHA: sha, Author: "Ada Lovelace <ada@example.com>", Message: "m", Branch: "main", Repo: "acme/infrastructure", Before: sha,
				Pusher: "Grace Hopper <grace@example.com>", Authors: []string{"Ada Lovelace <ada@example.com>", "Bob <bob@example.com>"}},
			Files:   []string{"components/vpc/main.tf", "iac/prod/s3-bucket/old-assets/config.json"},
			Removed: []message.ComponentRef{{Type: "s3-bucket", Nickname: "old-assets"}}, Truncated: true, AutoApprove: true,
			Provider: "github", Delivery: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		},
		message.TypeParameterChanged: message.ParameterChanged{Name: "/iac/vpc/core/runtime", Operation: "Update", Version: 8,
			WrittenAt: time.Date(2026, 12, 5, 10, 9, 44, 20e6, time.UTC), EventID: "6a7e8feb-b491-4cf7-a9f1-bf3703467718", AutoApprove: true},
	}
}

// minimalPayloads are what a producer writes with every optional field left out and every
// slice that may be empty left nil (encoded as null).
func minimalPayloads() map[string]any {
	const (
		cs   = "019cebab-87be-76cd-9c22-2d20c23174d0"
		hash = "3b5d5c3712955042212316173ccf37be800e4a5d1e5ea5e1e5bd1a2c5f2c8d1e"
	)
	sched := message.DeploymentScheduled{ChangeSetID: cs, DeploymentID: "d1", Component: "dev/vpc/core",
		CausedBy: []message.Cause{{Kind: message.CauseRequest, ID: "cr-1"}}, ConfigHash: hash}
	planned := message.DeploymentPlanned{DeploymentScheduled: sched, PlanFile: "p.tfplan", PlanHash: hash}
	return map[string]any{
		message.TypeChangeDetected: message.ChangeDetected{ChangeSetID: cs, Source: message.SourceRequest,
			Request: &message.ChangeRequest{ID: "cr-1", Configs: map[string]string{"vpc/core": "{}"}}},
		message.TypeChangeResolved: message.ChangeResolved{ChangeSetID: cs, Source: message.SourceRequest,
			RootCauses: []message.Cause{{Kind: message.CauseRequest, ID: "cr-1"}}},
		message.TypeDeploymentScheduled: sched,
		message.TypeDeploymentSkipped:   message.DeploymentSkipped{ChangeSetID: cs, Component: "dev/vpc/core", Reason: "destroy-held"},
		message.TypeDeploymentRecorded:  message.DeploymentRecorded{DeploymentScheduled: sched},
		message.TypeDeploymentPlanned:   planned,
		message.TypeDeploymentApproved:  message.DeploymentApproved{DeploymentPlanned: planned, ApprovedBy: "karma"},
		message.TypeDeploymentApplied: message.DeploymentApplied{ChangeSetID: cs, DeploymentID: "d1", Component: "dev/vpc/core",
			RuntimeVersion: 1, RuntimeHash: hash},
		message.TypeDeploymentFailed: message.DeploymentFailed{ChangeSetID: cs, DeploymentID: "d1", Component: "dev/vpc/core",
			Stage: "plan", Error: "exit status 1"},
		message.TypeChangeSuperseded: message.ChangeSuperseded{ChangeSetID: cs, SupersededBy: cs},
		message.TypeChangeRejected:   message.ChangeRejected{ChangeSetID: cs, Reason: "no"},
		message.TypeDriftDetected: message.DriftDetected{DriftID: "drift-0000000000000001", Component: "dev/vpc/core",
			Kind: message.DriftConfig, Reason: message.DriftMissing, Detail: "/iac/vpc/core/config is missing",
			Commit: "9f3c2a71e4b05d8c6a1f7e2b3d4c5a6978e1f0ab", Action: message.DriftReport},
		message.TypeChangeExpired: message.ChangeExpired{ChangeSetID: cs, ExpiresAt: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)},
		message.TypeGitPushed: message.GitPushed{Commit: message.Commit{SHA: "9f3c2a71e4b05d8c6a1f7e2b3d4c5a6978e1f0ab", Author: "ada"},
			Truncated: true},
		message.TypeParameterChanged: message.ParameterChanged{Name: "MyExampleParameter", Operation: "Create", EventID: "e-1"},
	}
}

func TestFullPayloadsAreFull(t *testing.T) {
	for typ, p := range fullPayloads() {
		if reflect.TypeOf(p) != reflect.TypeOf(newest[typ]()).Elem() {
			t.Errorf("%s: full payload is a %T, want the newest Go type", typ, p)
		}
		var empty []string
		findZero(reflect.ValueOf(p), typ, &empty)
		for _, path := range empty {
			t.Errorf("%s: field %s is not set in fullPayloads", typ, path)
		}
	}
}

func findZero(v reflect.Value, path string, out *[]string) {
	if v.IsZero() {
		*out = append(*out, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		findZero(v.Elem(), path, out)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				findZero(v.Field(i), path+"."+v.Type().Field(i).Name, out)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			findZero(v.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			findZero(v.MapIndex(k), fmt.Sprintf("%s[%v]", path, k), out)
		}
	}
}

// TestGoValuesValidate is the other direction: what the Go types encode (fully populated, and
// minimal) validates against the schema of the newest version, wrapped in a real envelope.
func TestGoValuesValidate(t *testing.T) {
	schemas := compileSchemas(t)
	actor := message.Actor{Kind: "cli", Name: "grace.hopper"}
	for name, set := range map[string]map[string]any{"full": fullPayloads(), "minimal": minimalPayloads()} {
		for _, typ := range slices.Sorted(maps.Keys(set)) {
			p := set[typ]
			t.Run(name+"/"+typ, func(t *testing.T) {
				e, err := message.New(typ, "prod", actor, "k", p)
				if err != nil {
					t.Fatal(err)
				}
				e.IdempotencyKey = idempotencyKey(t, e, ptrTo(p))
				b, err := message.Encode(e)
				if err != nil {
					t.Fatal(err)
				}
				doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
				if err != nil {
					t.Fatal(err)
				}
				if err := schemas[schemaFile(typ, message.Latest[typ])].Validate(doc); err != nil {
					t.Errorf("%s does not validate:\n%v", b, err)
				}
				back, err := message.Parse(b)
				if err != nil {
					t.Fatal(err)
				}
				out := newest[typ]()
				if err := message.Decode(back, out); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(reflect.ValueOf(out).Elem().Interface(), p) {
					t.Errorf("round trip changed the payload:\n got %+v\nwant %+v", out, p)
				}
			})
		}
	}
}

func ptrTo(v any) any {
	p := reflect.New(reflect.TypeOf(v))
	p.Elem().Set(reflect.ValueOf(v))
	return p.Interface()
}

// TestSchemasMatchGoFields compares each payload schema with its Go type, recursively: the
// schema's properties are exactly the Go type's JSON fields, and its required list is exactly
// the fields without omitempty.
func TestSchemasMatchGoFields(t *testing.T) {
	for file, typ := range goTypes() {
		doc := readJSON(t, filepath.Join(schemaDir, file)).(map[string]any)
		props, _ := doc["properties"].(map[string]any)
		payload, _ := props["payload"].(map[string]any)
		if payload == nil {
			t.Errorf("%s: no properties.payload", file)
			continue
		}
		compareStruct(t, doc, file+"#/properties/payload", payload, typ)
	}
}

// resolve follows local "$ref": "#/$defs/..." pointers.
func resolve(t *testing.T, doc, node map[string]any) map[string]any {
	t.Helper()
	for {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		name, ok := strings.CutPrefix(ref, "#/$defs/")
		if !ok {
			t.Fatalf("unexpected $ref %q", ref)
		}
		defs, _ := doc["$defs"].(map[string]any)
		next, _ := defs[name].(map[string]any)
		if next == nil {
			t.Fatalf("$ref %q: no such definition", ref)
		}
		node = next
	}
}

func compareStruct(t *testing.T, doc map[string]any, at string, node map[string]any, typ reflect.Type) {
	t.Helper()
	node = resolve(t, doc, node)
	if node["additionalProperties"] != false {
		t.Errorf("%s: additionalProperties is not false", at)
	}
	fields := jsonFields(typ)
	props, _ := node["properties"].(map[string]any)
	var required []string
	for _, r := range asSlice(node["required"]) {
		required = append(required, r.(string))
	}
	var wantRequired []string
	for name, f := range fields {
		p, ok := props[name].(map[string]any)
		if !ok {
			t.Errorf("%s: Go field %s.%s (json %q) is not in the schema", at, typ.Name(), f.Name, name)
			continue
		}
		if !f.omitempty {
			wantRequired = append(wantRequired, name)
		}
		compareValue(t, doc, at+"/"+name, p, f.Type)
	}
	for name := range props {
		if _, ok := fields[name]; !ok {
			t.Errorf("%s: schema property %q has no Go field in %s", at, name, typ.Name())
		}
	}
	sort.Strings(required)
	sort.Strings(wantRequired)
	if !slices.Equal(required, wantRequired) {
		t.Errorf("%s: required = %v, want the fields without omitempty %v", at, required, wantRequired)
	}
}

// compareValue recurses into struct-typed values: pointers, slices and maps of structs.
func compareValue(t *testing.T, doc map[string]any, at string, node map[string]any, typ reflect.Type) {
	t.Helper()
	node = resolve(t, doc, node)
	if typ == reflect.TypeFor[time.Time]() { // RFC 3339 text
		if !slices.Contains(schemaTypes(node), "string") || node["format"] != "date-time" {
			t.Errorf("%s: Go time.Time encodes as an RFC 3339 string, schema is %v", at, node)
		}
		return
	}
	switch typ.Kind() {
	case reflect.Pointer:
		compareValue(t, doc, at, node, typ.Elem())
	case reflect.Struct:
		compareStruct(t, doc, at, node, typ)
	case reflect.Slice, reflect.Array:
		if items, ok := node["items"].(map[string]any); ok {
			compareValue(t, doc, at+"/items", items, typ.Elem())
		} else {
			t.Errorf("%s: Go %s, schema has no items", at, typ)
		}
	case reflect.Map:
		if ap, ok := node["additionalProperties"].(map[string]any); ok {
			compareValue(t, doc, at+"/additionalProperties", ap, typ.Elem())
		} else {
			t.Errorf("%s: Go %s, schema has no additionalProperties schema", at, typ)
		}
	}
	if want := jsonTypeOf(typ); want != "" && !slices.Contains(schemaTypes(node), want) {
		t.Errorf("%s: Go %s encodes as %s, schema type is %v", at, typ, want, schemaTypes(node))
	}
}

func jsonTypeOf(typ reflect.Type) string {
	switch typ.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return ""
}

// schemaTypes is the node's "type" ("enum" and "const" count as the type of their values).
func schemaTypes(node map[string]any) []string {
	switch tt := node["type"].(type) {
	case string:
		return []string{tt}
	case []any:
		var out []string
		for _, x := range tt {
			out = append(out, x.(string))
		}
		return out
	}
	var out []string
	for _, x := range asSlice(node["enum"]) {
		switch x.(type) {
		case string:
			out = append(out, "string")
		case bool:
			out = append(out, "boolean")
		}
	}
	return out
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

type jsonField struct {
	reflect.StructField
	omitempty bool
}

// jsonFields lists what encoding/json writes for a struct type: embedded structs are flattened.
func jsonFields(typ reflect.Type) map[string]jsonField {
	out := map[string]jsonField{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		omit := false
		for _, o := range strings.Split(opts, ",") {
			omit = omit || o == "omitempty" || o == "omitzero"
		}
		out[name] = jsonField{f, omit}
	}
	return out
}
