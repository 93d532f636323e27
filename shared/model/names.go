package model

// validType reports whether s can name a component type: lower-case letters and digits, then
// also '-' and '_' (^[a-z0-9][a-z0-9_-]*$). Written out rather than as a regular expression: it is
// checked for every folder and every reference of a build.
func validType(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '-' || c == '_')) {
			return false
		}
	}
	return len(s) > 0
}

// validNickname reports whether s can be a nickname, a Parameter Store path segment: letters and
// digits, then also '.', '-' and '_' (^[A-Za-z0-9][A-Za-z0-9_.-]*$).
func validNickname(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '-' || c == '_' || c == '.')) {
			return false
		}
	}
	return len(s) > 0
}
