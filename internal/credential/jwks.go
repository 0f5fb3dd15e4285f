package credential

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
)

// jwksCheckEvery is how often a JWKS file is looked at again: a rotated key is in use within
// about a second, and a busy ipconf stats the file once a second, not once a request.
const jwksCheckEvery = time.Second

// jwksFile is a JSON Web Key Set file, read again when it changes. A file that turns unreadable
// or invalid keeps the keys last read (and the error is kept for Err), so a bad edit never locks
// every device out.
type jwksFile struct {
	path    string
	keys    atomic.Pointer[jwksKeys]
	checked atomic.Int64 // unix ns of the last look at the file

	mu  sync.Mutex // one reload at a time
	err error      // the last reload's failure, nil once a reload succeeds
}

type jwksKeys struct {
	keys    map[string]key
	modTime time.Time
	size    int64
}

func openJWKS(path string) (*jwksFile, error) {
	f := &jwksFile{path: path}
	k, err := readJWKS(path)
	if err != nil {
		return nil, err
	}
	f.keys.Store(k)
	f.checked.Store(time.Now().UnixNano())
	return f, nil
}

// current returns the keys, reloading the file first when it changed since the last look (at
// most once per jwksCheckEvery).
func (f *jwksFile) current() *jwksKeys {
	now := time.Now().UnixNano()
	last := f.checked.Load()
	if now-last < int64(jwksCheckEvery) || !f.checked.CompareAndSwap(last, now) {
		return f.keys.Load()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.keys.Load()
	fi, err := os.Stat(f.path)
	if err != nil {
		f.err = fmt.Errorf("jwks file %s: %w", f.path, err)
		return cur
	}
	if fi.ModTime().Equal(cur.modTime) && fi.Size() == cur.size {
		return cur
	}
	k, err := readJWKS(f.path)
	if err != nil {
		f.err = err
		return cur
	}
	f.err = nil
	f.keys.Store(k)
	return k
}

// Err is why the file's last change could not be used, or nil.
func (f *jwksFile) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func readJWKS(path string) (*jwksKeys, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("jwks file: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwks file: %w", err)
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwks file %s: not a JSON Web Key Set: %w", path, err)
	}
	jwks, err := set.JWKSlice()
	if err != nil {
		return nil, fmt.Errorf("jwks file %s: %w", path, err)
	}
	out := &jwksKeys{keys: map[string]key{}, modTime: fi.ModTime(), size: fi.Size()}
	for i, j := range jwks {
		m := j.Marshal()
		if m.KID == "" {
			return nil, fmt.Errorf("jwks file %s: key %d has no kid", path, i)
		}
		k, err := jwkKey(j.Key())
		if err != nil {
			return nil, fmt.Errorf("jwks file %s: key %q: %w", path, m.KID, err)
		}
		if a := m.ALG.String(); a != "" && a != k.alg {
			return nil, fmt.Errorf("jwks file %s: key %q says alg %s, but it is a key for %s", path, m.KID, a, k.alg)
		}
		if _, dup := out.keys[m.KID]; dup {
			return nil, fmt.Errorf("jwks file %s: kid %q appears twice", path, m.KID)
		}
		out.keys[m.KID] = k
	}
	if len(out.keys) == 0 {
		return nil, errors.New("jwks file " + path + " holds no key")
	}
	return out, nil
}

// jwkKey turns a JWK's key into a verification key: a public key (from a private one too), or an
// HS256 secret.
func jwkKey(k any) (key, error) {
	switch p := k.(type) {
	case []byte:
		if len(p) < 32 {
			return key{}, fmt.Errorf("an oct key of %d bytes: HS256 needs at least 32", len(p))
		}
		return key{alg: "HS256", k: p}, nil
	case *rsa.PrivateKey:
		return keyOf(&p.PublicKey)
	case *ecdsa.PrivateKey:
		return keyOf(&p.PublicKey)
	case ed25519.PrivateKey:
		return keyOf(p.Public())
	}
	return keyOf(k)
}
