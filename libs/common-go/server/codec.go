package server

import (
	"compress/zlib"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // gzip requests and replies
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"

	"acme.example/common/rpcerr"
)

// tolerantCodec is grpc-go's proto codec, except that bytes that do not parse are not an
// error of grpc's (INTERNAL, before any interceptor runs) but remembered against the message
// they were meant for, so the interceptors answer INVALID_ARGUMENT with a BadRequest
// violation on `request`, as acme_common.malformed does, and only for authenticated calls.
type tolerantCodec struct {
	encoding.CodecV2
	malformed sync.Map // message (pointer) -> its parse error, until take()
}

func newTolerantCodec() *tolerantCodec {
	return &tolerantCodec{CodecV2: encoding.GetCodecV2(proto.Name)}
}

func (c *tolerantCodec) Unmarshal(data mem.BufferSlice, message any) error {
	if err := c.CodecV2.Unmarshal(data, message); err != nil {
		c.malformed.Store(message, err)
	}
	return nil
}

// take is the INVALID_ARGUMENT of a message whose bytes did not parse (forgetting it), or nil.
func (c *tolerantCodec) take(message any) error {
	failure, ok := c.malformed.LoadAndDelete(message)
	if !ok {
		return nil
	}
	return rpcerr.InvalidArgument(rpcerr.FieldViolation{
		Field: "request", Description: fmt.Sprintf("not a valid protobuf message (%v)", failure),
	})
}

// deflate is the `deflate` grpc-encoding (zlib, as grpc core writes it), which grpc-go does
// not ship: GRPC_COMPRESSION=deflate and clients' deflate requests, as the Python greeter.
type deflate struct{}

func (deflate) Name() string { return "deflate" }

func (deflate) Compress(w io.Writer) (io.WriteCloser, error) { return zlib.NewWriter(w), nil }

func (deflate) Decompress(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) }

func init() { encoding.RegisterCompressor(deflate{}) }
