package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/platoim/plato/internal/opsapi"
)

// OpsHandler is the gateway's part of the ops API (internal/opsapi), served on the admin address
// under /api/v1/gateway and guarded by key (ops.key):
//
//	GET    /api/v1/gateway          the gateway and its drain (opsapi.Status)
//	POST   /api/v1/gateway/migrate  redirect some devices (opsapi.MigrateRequest -> MigrateResult)
//	POST   /api/v1/gateway/drain    start draining (opsapi.DrainRequest -> Status)
//	DELETE /api/v1/gateway/drain    call the drain off (-> Status)
func (gw *Gateway) OpsHandler(key string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+opsapi.PathStatus, func(w http.ResponseWriter, _ *http.Request) {
		opsapi.WriteJSON(w, http.StatusOK, gw.OpsStatus())
	})
	mux.HandleFunc("POST "+opsapi.PathMigrate, func(w http.ResponseWriter, r *http.Request) {
		var req opsapi.MigrateRequest
		if !decode(w, r, &req) {
			return
		}
		res, err := gw.Migrate(r.Context(), req)
		answer(w, res, err)
	})
	mux.HandleFunc("POST "+opsapi.PathDrain, func(w http.ResponseWriter, r *http.Request) {
		var req opsapi.DrainRequest
		if !decode(w, r, &req) {
			return
		}
		s, err := gw.StartDrain(r.Context(), req.Rate)
		answer(w, s, err)
	})
	mux.HandleFunc("DELETE "+opsapi.PathDrain, func(w http.ResponseWriter, _ *http.Request) {
		opsapi.WriteJSON(w, http.StatusOK, gw.Undrain())
	})
	mux.HandleFunc("/api/v1/gateway/", func(w http.ResponseWriter, r *http.Request) {
		opsapi.WriteError(w, http.StatusNotFound, "no such operation: "+r.Method+" "+r.URL.Path)
	})
	return opsapi.Authenticated(key, guardHTTP(gw, mux))
}

// decode reads a JSON body (an empty one is the zero request) and answers 400 when it is not one.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		opsapi.WriteError(w, http.StatusBadRequest, "the request body is not the JSON expected: "+err.Error())
		return false
	}
	return true
}

func answer(w http.ResponseWriter, v any, err error) {
	var oe *OpsError
	switch {
	case errors.As(err, &oe):
		opsapi.WriteError(w, oe.Status, oe.Msg)
	case err != nil:
		opsapi.WriteError(w, http.StatusInternalServerError, err.Error())
	default:
		opsapi.WriteJSON(w, http.StatusOK, v)
	}
}

// guardHTTP answers 500 for a handler that panicked, counted like any callback's panic.
func guardHTTP(gw *Gateway, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				gw.metrics.panics.Add(1)
				gw.log.Error("ops API handler panicked", "path", r.URL.Path, "panic", v)
				opsapi.WriteError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		h.ServeHTTP(w, r)
	})
}
