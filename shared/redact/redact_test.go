package redact

import "testing"

func TestSecretKeyAndPointer(t *testing.T) {
	for k, want := range map[string]bool{"db_password": true, "MasterUserPassword": true, "passwd": true, "api-key": true, "API_KEY": true,
		"private key": true, "client_secret": true, "token": true, "credentials": true, "cidr": false, "passenger": true, "keyring": false, "": false} {
		if SecretKey(k) != want {
			t.Errorf("SecretKey(%q) = %v", k, !want)
		}
	}
	for ptr, want := range map[string]bool{"/db_password": true, "/credentials/0/user": true, "/tags/Environment": false, "/": false,
		"/a~1token/x": true, "/a~0b": false} {
		if SecretPointer(ptr) != want {
			t.Errorf("SecretPointer(%q) = %v", ptr, !want)
		}
	}
}

func TestURLPasswords(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:hunter2@db.internal:5432/app":       "postgres://app:" + Placeholder + "@db.internal:5432/app",
		"jdbc:mysql://u:p%40ss@h/db?x=1 and redis://:r3d@c": "jdbc:mysql://u:" + Placeholder + "@h/db?x=1 and redis://:" + Placeholder + "@c",
		"https://user@example.com/x":                        "https://user@example.com/x",
		"https://example.com/a:b@c":                         "https://example.com/a:b@c",
		"postgres://app:${db/main.runtime.password}@db/app": "postgres://app:${db/main.runtime.password}@db/app",
		"no url: a:b@c": "no url: a:b@c",
	} {
		got, changed := URLPasswords(in)
		if got != want || changed != (in != want) {
			t.Errorf("URLPasswords(%q) = %q, %v; want %q", in, got, changed, want)
		}
		if HoldsURLPlaceholder(got) != (in != want) {
			t.Errorf("HoldsURLPlaceholder(%q) = %v", got, !(in != want))
		}
	}
}

func TestURLPasswordsIn(t *testing.T) {
	got := URLPasswordsIn("a postgres://app:hunter2@db and redis://:r3d@c, postgres://app:${x.runtime.p}@db")
	if len(got) != 2 || got[0] != "hunter2" || got[1] != "r3d" {
		t.Errorf("URLPasswordsIn = %q", got)
	}
}
