package model_test

import (
	"reflect"
	"testing"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
)

// RuntimeDiff: how each changed key of a runtime changed, as the policies of its dependents see
// it — numbers as written, secrets replaced (secret-named keys, URLs' passwords, inside nested
// values and JSON held in strings), and no value at all for a SecureString.
func TestRuntimeDiff(t *testing.T) {
	t.Parallel()
	prev := `{"id":12345678901234567,"gone":{"x":1},"db_password":"old","same":1}`
	cur := `{"id":12345678901234568,"url":"postgres://app:hunter2@db/app","db_password":"new","nested":{"token":"t","keep":"k"},"doc":"{\"secret\":\"s\"}","same":1}`
	keys := []string{"db_password", "doc", "gone", "id", "nested", "url"} // what ChangedKeys answers
	got := model.RuntimeDiff([]byte(prev), []byte(cur), keys, false, false)
	want := []message.KeyChange{
		{Key: "db_password", Op: "change", Before: `"(sensitive value)"`, After: `"(sensitive value)"`},
		{Key: "doc", Op: "add", After: `"{\"secret\":\"(sensitive value)\"}"`},
		{Key: "gone", Op: "remove", Before: `{"x":1}`},
		{Key: "id", Op: "change", Before: `12345678901234567`, After: `12345678901234568`},
		{Key: "nested", Op: "add", After: `{"keep":"k","token":"(sensitive value)"}`},
		{Key: "url", Op: "add", After: `"postgres://app:(sensitive value)@db/app"`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RuntimeDiff:\n got %+v\nwant %+v", got, want)
	}
	secure := model.RuntimeDiff(nil, []byte(cur), []string{"id", "url"}, false, true)
	if want := []message.KeyChange{{Key: "id", Op: "change"}, {Key: "url", Op: "change"}}; !reflect.DeepEqual(secure, want) {
		t.Errorf("RuntimeDiff of a SecureString: %+v, want %+v (no value)", secure, want)
	}
	wasSecure := model.RuntimeDiff([]byte(prev), []byte(cur), []string{"gone", "id"}, true, false)
	if want := []message.KeyChange{{Key: "gone", Op: "remove"}, {Key: "id", Op: "change", After: `12345678901234568`}}; !reflect.DeepEqual(wasSecure, want) {
		t.Errorf("RuntimeDiff from a SecureString: %+v, want %+v (no value before)", wasSecure, want)
	}
}
