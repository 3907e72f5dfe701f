package storeline

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

const (
	pinHashPrefix = "pbkdf2-sha256$"
	pinIterations = 20000
)

// HashPIN hashes a seller's PIN with PBKDF2-SHA256 and the given salt
// (16 random bytes, chosen by the caller). A PIN is short, so the hash only
// slows an offline guess; the tills' API also rate-limits attempts.
func HashPIN(pin string, salt []byte) string {
	key, err := pbkdf2.Key(sha256.New, pin, salt, pinIterations, 32)
	if err != nil {
		panic("storeline: pbkdf2: " + err.Error()) // only for FIPS-forbidden parameters, which these are not
	}
	return pinHashPrefix + base64.RawStdEncoding.EncodeToString(salt) + "$" + base64.RawStdEncoding.EncodeToString(key)
}

// parsePINHash splits a hash of HashPIN's form into its salt and key
// (ok false for any other form: a truncated import, another scheme).
func parsePINHash(hash string) (salt, key []byte, ok bool) {
	rest, ok := strings.CutPrefix(hash, pinHashPrefix)
	if !ok {
		return nil, nil, false
	}
	s, k, ok := strings.Cut(rest, "$")
	if !ok {
		return nil, nil, false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(s)
	key, err2 := base64.RawStdEncoding.DecodeString(k)
	return salt, key, err1 == nil && err2 == nil && len(salt) > 0 && len(key) == 32
}

// validPINHash reports whether hash has HashPIN's form. A malformed hash
// would refuse every PIN, so a seller holding one could never log in.
func validPINHash(hash string) bool {
	_, _, ok := parsePINHash(hash)
	return ok
}

// CheckPIN reports whether pin matches a hash made by HashPIN.
func CheckPIN(hash, pin string) bool {
	salt, want, ok := parsePINHash(hash)
	if !ok {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, pin, salt, pinIterations, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

// TokenHash returns the hex SHA-256 of a bearer token, the form tokens are
// stored and looked up in.
func TokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}
