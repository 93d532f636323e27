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
