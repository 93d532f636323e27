package redact

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestSecretKey(t *testing.T) {
	for k, want := range map[string]bool{
		"db_password": true, "MasterUserPassword": true, "passwd": true, "pwd": true, "DB_PWD": true,
		"passphrase": true, "api-key": true, "API_KEY": true, "apikey": true, "apiKey": true, "x-api-key": true,
		"private key": true, "privateKey": true, "private_key": true, "client_secret": true, "clientSecret": true,
		"token": true, "auth_token": true, "sas_token": true, "credentials": true, "secret_access_key": true,
		"connection_string": true, "connectionString": true, "ConnectionStrings": true, "conn_str": true, "connstr": true,
		"dsn": true, "DSN": true, "sentry_dsn": true, "dbDSN": true, "DSNString": true,
		"webhook_url": true, "slackWebhookUrl": true, "Authorization": true, "proxy-authorization": true,
		// matched by "pass" anywhere, as before: hidden, never shown by mistake
		"passenger": true, "password_policy_min_length": true,
		"cidr": false, "keyring": false, "": false, "key": false, "name": false, "value": false,
		"rdsName": false, "rds_name": false, "RDSNodeCount": false, "kidsNames": false,
		"authorization_type": false, "authorizationType": false, "authorizer_id": false,
		"access_key": true, "primary_access_key": true, "AccountKey": true, "SharedAccessKey": true, "SharedAccessSignature": true,
		"access_key_id": false, "accessKeyId": false, "access_keys_enabled": false, "connection_strategy": false, "connections": false,
		"webhook_enabled": false, "certificate_arn": false,
	} {
		if SecretKey(k) != want {
			t.Errorf("SecretKey(%q) = %v", k, !want)
		}
	}
}

func decode(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return v
}

// The rule over JSON: secret-named keys, name/value entries with a secret-named name (ECS,
// Kubernetes, Lambda, CloudFormation), inside JSON held in strings (Terraform's
// container_definitions), and what Text finds in strings.
func TestValue(t *testing.T) {
	const P = `"(sensitive value)"`
	for _, c := range []struct{ in, want string }{
		{`{"db_password":"hunter2","host":"db"}`, `{"db_password":` + P + `,"host":"db"}`},
		{`{"credentials":{"user":"app","n":12345}}`, `{"credentials":` + P + `}`},
		{`{"environment":[{"name":"DB_PASSWORD","value":"hunter2"},{"name":"PORT","value":"5432"}]}`,
			`{"environment":[{"name":"DB_PASSWORD","value":` + P + `},{"name":"PORT","value":"5432"}]}`},
		{`[{"Name":"api_key","Value":"k-123"}]`, `[{"Name":"api_key","Value":` + P + `}]`},
		{`[{"key":"token","value":{"a":1}}]`, `[{"key":"token","value":` + P + `}]`},
		{`[{"ParameterKey":"DBPassword","ParameterValue":"p"}]`, `[{"ParameterKey":"DBPassword","ParameterValue":` + P + `}]`},
		{`[{"Namespace":"aws:elasticbeanstalk:application:environment","OptionName":"DB_PWD","Value":"p"}]`,
			`[{"Namespace":"aws:elasticbeanstalk:application:environment","OptionName":"DB_PWD","Value":` + P + `}]`},
		// a reference is no value: valueFrom (ECS secrets, Kubernetes secretKeyRef) is shown
		{`[{"name":"DB_PASSWORD","valueFrom":"arn:aws:ssm:eu-west-1:1:parameter/db"}]`, ``},
		// a name that is no secret's, a secret-named value under "name"
		{`[{"name":"LOG_LEVEL","value":"debug"},{"name":"password","other":"x"}]`, ``},
		{`{"container_definitions":"[{\"name\":\"app\",\"environment\":[{\"name\":\"DB_PASSWORD\",\"value\":\"hunter2\"}]}]"}`,
			`{"container_definitions":"[{\"environment\":[{\"name\":\"DB_PASSWORD\",\"value\":\"(sensitive value)\"}],\"name\":\"app\"}]"}`},
		{`{"user_data":"#!/bin/sh\nexport DB_PASSWORD=hunter2\nexport PORT=5432\n"}`,
			`{"user_data":"#!/bin/sh\nexport DB_PASSWORD=(sensitive value)\nexport PORT=5432\n"}`},
		{`{"db_password":null,"x":"(sensitive value)"}`, ``},
		// a Kubernetes Secret (a kubernetes_manifest's plan): its data whatever the keys
		{`{"manifest":{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"data":{"host":"ZGI="},"stringData":{"user":"app"}}}`,
			`{"manifest":{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"data":` + P + `,"stringData":` + P + `}}`},
		{`{"apiVersion":"v1","kind":"ConfigMap","data":{"host":"db"}}`, ``},
	} {
		in := decode(t, c.in)
		got, changed := Value(in)
		want := c.want
		if want == "" {
			want = c.in
		}
		if g := string(MarshalPlain(got)); g != string(MarshalPlain(decode(t, want))) {
			t.Errorf("Value(%s)\n = %s\nwant %s", c.in, g, want)
		}
		if changed != (c.want != "") {
			t.Errorf("Value(%s) changed = %v", c.in, changed)
		}
		if string(MarshalPlain(in)) != string(MarshalPlain(decode(t, c.in))) {
			t.Errorf("Value modified its input: %s", MarshalPlain(in))
		}
	}
}

func TestSecrets(t *testing.T) {
	v := decode(t, `{"host":"db","master_password":"hunter2","n":{"pin_token":31337},
		"env":[{"name":"API_KEY","value":"k-123"},{"name":"PORT","value":"5432"}],
		"defs":"[{\"Name\":\"DB_PWD\",\"Value\":\"in-a-string\"}]",
		"url":"postgres://app:pg-pass@db/app","script":"TOKEN='t o k' make","nothing":"(sensitive value)",
		"k8s":{"kind":"Secret","data":{"host":"ZGItaG9zdA=="}}}`)
	got := Secrets(v)
	slices.Sort(got)
	want := []string{"31337", "ZGItaG9zdA==", "hunter2", "in-a-string", "k-123", "pg-pass", "t o k"}
	if !slices.Equal(got, want) {
		t.Errorf("Secrets = %q, want %q", got, want)
	}
}

func TestSecretAt(t *testing.T) {
	doc := decode(t, `{"db_password":"x","credentials":[{"user":"u"}],"tags":{"Environment":"prod"},"a/token":{"x":1},"a~b":1,
		"env":[{"name":"DB_PASSWORD","value":"hunter2"},{"name":"PORT","value":"5432"}],
		"k8s":{"kind":"Secret","metadata":{"name":"db"},"data":{"host":"ZGI="}}}`)
	for ptr, want := range map[string]bool{"/db_password": true, "/credentials/0/user": true, "/tags/Environment": false, "/": false,
		"/a~1token/x": true, "/a~0b": false, "/env/0/value": true, "/env/1/value": false, "/env/0/name": false,
		"/env/7/value": false, "/missing/password": true, "/k8s/data/host": true, "/k8s/metadata/name": false} {
		if SecretAt(doc, ptr) != want {
			t.Errorf("SecretAt(%q) = %v", ptr, !want)
		}
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:hunter2@db.internal:5432/app":       "postgres://app:" + Placeholder + "@db.internal:5432/app",
		"jdbc:mysql://u:p%40ss@h/db?x=1 and redis://:r3d@c": "jdbc:mysql://u:" + Placeholder + "@h/db?x=1 and redis://:" + Placeholder + "@c",
		"https://user@example.com/x":                        "https://user@example.com/x",
		"https://example.com/a:b@c":                         "https://example.com/a:b@c",
		"postgres://app:${db/main.runtime.password}@db/app": "postgres://app:${db/main.runtime.password}@db/app",
		"no url: a:b@c": "no url: a:b@c",
		// NAME=value pairs: environment files, scripts, key=value connection strings, queries, flags
		"DB_PASSWORD=hunter2\nPORT=5432\n":                       "DB_PASSWORD=" + Placeholder + "\nPORT=5432\n",
		"export API_KEY=\"k 1\"; export PWD='x'":                 "export API_KEY=\"" + Placeholder + "\"; export PWD='" + Placeholder + "'",
		"Server=tcp:db,1433;User ID=app;Password=p=ss;":          "Server=tcp:db,1433;User ID=app;Password=" + Placeholder + ";",
		"host=db user=app password=hunter2 sslmode=require":      "host=db user=app password=" + Placeholder + " sslmode=require",
		"https://h/hook?token=abc&x=1":                           "https://h/hook?token=" + Placeholder + "&x=1",
		"run --client-secret=s3cr3t --region=eu":                 "run --client-secret=" + Placeholder + " --region=eu",
		"password = \"hunter2\"":                                 "password = \"" + Placeholder + "\"",
		"DB_PASSWORD=${db/main.runtime.password} MODE=a":         "DB_PASSWORD=${db/main.runtime.password} MODE=a",
		"password=(sensitive value); a=b":                        "password=(sensitive value); a=b",
		"token == nil, password=":                                "token == nil, password=",
		"region=eu-west-1 instance_count=3 rdsName=x":            "region=eu-west-1 instance_count=3 rdsName=x",
		"postgres://app:pw1@db/app?sslmode=require&password=pw2": "postgres://app:" + Placeholder + "@db/app?sslmode=require&password=" + Placeholder,
		// pairs inside the value of a name no secret's; a URL inside a secret's value is hidden whole
		"+ connection = \"Server=db;Password=pw3;\"": "+ connection = \"Server=db;Password=" + Placeholder + ";\"",
		"OPTS=token=t4 X=1":                          "OPTS=token=" + Placeholder + " X=1",
		"DB_PASSWORD=postgres://app:pw5@db":          "DB_PASSWORD=" + Placeholder,
		"DefaultEndpointsProtocol=https;AccountName=st;AccountKey=k6==;EndpointSuffix=core.windows.net": "DefaultEndpointsProtocol=https;AccountName=st;AccountKey=" + Placeholder + ";EndpointSuffix=core.windows.net",
	} {
		got, changed := Text(in)
		if got != want || changed != (in != want) {
			t.Errorf("Text(%q) = %q, %v; want %q", in, got, changed, want)
		}
		if HoldsPlaceholder(got) != (in != want || strings.Contains(in, Placeholder)) {
			t.Errorf("HoldsPlaceholder(%q) = %v", got, !HoldsPlaceholder(got))
		}
		if again, c := Text(got); again != got || c {
			t.Errorf("Text(Text(%q)) = %q, %v: not idempotent", in, again, c)
		}
	}
}

func TestTextSecrets(t *testing.T) {
	got := TextSecrets("a postgres://app:hunter2@db and redis://:r3d@c, postgres://app:${x.runtime.p}@db DB_PASSWORD=\"q w\"")
	if !slices.Equal(got, []string{"hunter2", "r3d", "q w"}) {
		t.Errorf("TextSecrets = %q", got)
	}
}
