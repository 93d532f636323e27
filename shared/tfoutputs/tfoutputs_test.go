package tfoutputs

import (
	"os"
	"reflect"
	"testing"
	"testing/fstest"
)

// The example modules: each output is followed through terraform_data's input, locals and
// try() to the config it derives from.
func TestExampleModules(t *testing.T) {
	t.Parallel()
	fsys := os.DirFS("../../examples/components")
	for _, tc := range []struct {
		module string
		want   map[string][]string
	}{
		{"vpc", map[string][]string{"vpc_id": {"/cidr"}, "private_subnet_ids": {"/az_count", "/cidr"}, "flow_log_group": {"/flow_logs/log_group_name"}}},
		{"s3-bucket", map[string][]string{"bucket_name": {"/bucket_name"}, "bucket_arn": {"/bucket_name"}, "bucket_regional_domain_name": {"/bucket_name", "/region"}}},
		{"lambda", map[string][]string{"role_arn": {}, "function_arns": {"/functions", "/region"}, "function_versions": {"/functions", "/lambda_runtime", "/memory_mb"}}},
	} {
		t.Run(tc.module, func(t *testing.T) {
			t.Parallel()
			outs, err := Read(fsys, tc.module)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for name, o := range outs {
				if o.Unknown != "" {
					t.Errorf("%s: unknown: %s", name, o.Unknown)
				}
				got[name] = o.Config
			}
			for name, want := range tc.want {
				if !reflect.DeepEqual(got[name], want) {
					t.Errorf("%s derives from %v, want %v", name, got[name], want)
				}
			}
		})
	}
}

func TestChangedBy(t *testing.T) {
	t.Parallel()
	outs, err := Read(os.DirFS("../../examples/components"), "vpc")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		changed []string
		want    []string // outputs that change
	}{
		{"az_count", []string{"/az_count"}, []string{"private_subnet_ids"}},
		{"cidr", []string{"/cidr"}, []string{"private_subnet_ids", "vpc_id"}},
		{"retention only", []string{"/flow_logs/retention_days", "/tags/Owner"}, nil},
		{"the flow_logs object replaced", []string{"/flow_logs"}, []string{"flow_log_group"}},
		{"everything", []string{""}, []string{"flow_log_group", "private_subnet_ids", "vpc_id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, name := range []string{"flow_log_group", "private_subnet_ids", "vpc_id"} {
				if ok, why := outs[name].ChangedBy(tc.changed); ok {
					got = append(got, name)
					if len(why) == 0 {
						t.Errorf("%s changes, with no pointer saying why", name)
					}
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("changed %v: outputs %v, want %v", tc.changed, got, tc.want)
			}
		})
	}
}

// What cannot be told statically is said, and counts as changing with anything.
func TestUnknownAndConservative(t *testing.T) {
	t.Parallel()
	outs, err := Read(os.DirFS("testdata"), "unknown")
	if err != nil {
		t.Fatal(err)
	}
	if o := outs["arn"]; !reflect.DeepEqual(o.Config, []string{"/bucket_name", "/tags"}) || o.Unknown != "" {
		t.Errorf("a provider's attribute counts with every argument of its resource: %+v", o)
	}
	if o := outs["ghost"]; o.Unknown == "" {
		t.Errorf("an undefined local is unknown: %+v", o)
	} else if ok, _ := o.ChangedBy([]string{"/anything"}); !ok {
		t.Error("an unknown output does not change with the config")
	}
	if o := outs["name"]; len(o.Config) != 0 || o.Unknown != "" {
		t.Errorf("var.nickname is not the config: %+v", o)
	}
	if ok, _ := outs["whole"].ChangedBy([]string{"/tags/x"}); !ok {
		t.Error("jsonencode(var.config) does not change with the config")
	}
	broken := fstest.MapFS{"m/main.tf": {Data: []byte(`output "x" { value = `)}, "m/ok.tf": {Data: []byte(`output "y" { value = var.config.a }`)}}
	outs, err = Read(broken, "m")
	if err != nil || outs["y"].Unknown == "" {
		t.Errorf("a module with a file that does not parse: %+v, %v", outs, err)
	}
	if _, err := Read(fstest.MapFS{"m/README.md": {}}, "m"); err == nil {
		t.Error("a folder without *.tf files is a module")
	}
}

// Files terraform reads besides *.tf — outputs in JSON, an override file replacing an output's
// value — would make the analysis miss or misread outputs: the module is not analysed at all
// (the prediction then counts every key as changed).
func TestJSONAndOverrideFilesAreNotAnalysed(t *testing.T) {
	t.Parallel()
	main := []byte(`output "id" { value = var.config.name }`)
	for _, extra := range []string{"m/outputs.tf.json", "m/override.tf", "m/main_override.tf", "m/x_override.tf.json"} {
		fsys := fstest.MapFS{"m/main.tf": {Data: main}, extra: {Data: []byte(`output "id" { value = var.config.size }`)}}
		if outs, err := Read(fsys, "m"); err == nil {
			t.Errorf("with %s: %+v, want an error", extra, outs)
		}
	}
	if _, err := Read(fstest.MapFS{"m/main.tf": {Data: main}, "m/overrides.tf": {Data: main}}, "m"); err != nil {
		t.Errorf("overrides.tf is an ordinary file: %v", err)
	}
}

// A provider configured in the module from the config (its region, say) shapes what every
// resource and data source of the module reports — an ARN or a queue URL names the region — so
// an output of a resource changes with the provider's arguments too; terraform_data (the
// built-in provider) does not.
func TestProviderArgumentsCountForResources(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{"m/main.tf": {Data: []byte(`
provider "aws" {
  region = var.config.region
}
resource "aws_sqs_queue" "q" {
  name = var.config.name
}
data "aws_caller_identity" "me" {}
resource "terraform_data" "t" {
  input = { n = var.config.name }
}
output "url" { value = aws_sqs_queue.q.url }
output "account" { value = data.aws_caller_identity.me.account_id }
output "n" { value = terraform_data.t.output.n }
`)}}
	outs, err := Read(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{"url": {"/name", "/region"}, "account": {"/region"}, "n": {"/name"}} {
		if o := outs[name]; !reflect.DeepEqual(o.Config, want) || o.Unknown != "" {
			t.Errorf("%s derives from %+v, want %v", name, o, want)
		}
	}
	if ok, _ := outs["url"].ChangedBy([]string{"/region"}); !ok {
		t.Error("the queue's url does not change with the provider's region")
	}
}
