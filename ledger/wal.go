package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/storeline/storeline"
)

// WAL layout. The WAL is a directory of segments named wal-<index>.seg
// (index in 16 hex digits). A segment is created as wal-<index>.tmp,
// zero-filled to its full size, synced, renamed and the directory synced,
// before any frame is written to it, so a frame write changes no metadata
// and fdatasync has only data to flush.
//
// A frame is: payload length (uint32 BE), CRC-32C of the payload (uint32
// BE), payload. The payload is the batch's LSN (uint64 BE) followed by the
// msgpack walBatch. LSNs grow by one per batch across segments. A reader
// stops a segment at the first frame whose length is zero (never written),
// runs past the segment, fails its CRC (torn), or whose LSN is not above
// the previous one (stale), then continues with the next segment.
const (
	frameHeader    = 8
	frameOverhead  = frameHeader + 8
	segHeaderBytes = 0
	zeroChunk      = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type segment struct {
	index   uint64
	lastLSN uint64 // greatest LSN in the segment; 0 if none
}

type prepared struct {
	index uint64
	f     File
	err   error
}

// wal is the segment list and the write position. The committer alone
// writes; the checkpointer removes old segments under mu.
type wal struct {
	fs       FS
	dir      string
	segBytes int64

	mu   sync.Mutex // guards segs
	segs []segment  // by index; the last is the current one

	cur   File
	off   int64
	spare chan prepared // the next segment, prepared ahead
}

func segName(index uint64) string { return fmt.Sprintf("wal-%016x.seg", index) }

func parseSegName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, "wal-")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".seg")
	if !ok || len(s) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 64)
	return v, err == nil
}

// frameBytes returns the frame of one batch payload.
func frameBytes(lsn uint64, body []byte) []byte {
	n := 8 + len(body)
	f := make([]byte, frameHeader+n)
	binary.BigEndian.PutUint64(f[frameHeader:], lsn)
	copy(f[frameHeader+8:], body)
	binary.BigEndian.PutUint32(f[0:], uint32(n))
	binary.BigEndian.PutUint32(f[4:], crc32.Checksum(f[frameHeader:], castagnoli))
	return f
}

// frameCodec encodes the committer's events and frames into reused
// buffers (only the committer uses it): the encoder and its buffer do not
// grow again for every event.
type frameCodec struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

func (c *frameCodec) reset() {
	if c.enc == nil {
		c.enc = msgpack.NewEncoder(&c.buf)
	}
	c.buf.Reset()
}

// event returns the msgpack bytes of se in a new slice (Badger and the
// WAL record keep it). They are the bytes msgpack.Marshal(se) gives
// (TestFrameCodecMatchesMarshal*), appended field by field without
// reflection or an encoder: this runs in the committer for every event.
func (c *frameCodec) event(se *storedEvent) ([]byte, error) {
	return appendStoredEvent(make([]byte, 0, 192+len(se.Body)+96*len(se.Postings)), se)
}

// appendStoredEvent appends se as msgpack's struct encoding does: a map
// of the fields in declaration order keyed by their tags, unsigned
// integers in their full width, the time as msgpack's timestamp
// extension, the body raw, decimals as bin of their MarshalBinary.
func appendStoredEvent(b []byte, se *storedEvent) ([]byte, error) {
	b = append(b, mpFixMap|11)
	b = appendMPStr(b, "i")
	b = appendMPBin(b, se.ID[:])
	b = appendMPStr(b, "o")
	b = appendMPStr(b, se.Origin)
	b = appendMPStr(b, "e")
	b = appendMPUint64(b, se.Epoch)
	b = appendMPStr(b, "s")
	b = appendMPUint64(b, se.Seq)
	b = appendMPStr(b, "v")
	b = append(b, mpUint16, byte(se.Schema>>8), byte(se.Schema))
	b = appendMPStr(b, "h")
	b = appendMPUint64(b, se.HLC)
	b = appendMPStr(b, "t")
	b = appendMPTime(b, se.Occurred)
	b = appendMPStr(b, "d")
	b = appendMPStr(b, se.Date)
	b = appendMPStr(b, "k")
	b = appendMPStr(b, se.Kind)
	b = appendMPStr(b, "b")
	if se.Body == nil {
		b = append(b, mpNil)
	} else {
		b = append(b, se.Body...)
	}
	b = appendMPStr(b, "p")
	if se.Postings == nil {
		return append(b, mpNil), nil
	}
	b = appendMPArrayLen(b, len(se.Postings))
	for i := range se.Postings {
		p := &se.Postings[i]
		b = append(b, mpFixMap|3)
		b = appendMPStr(b, "a")
		b = appendMPStr(b, p.Account)
		b = appendMPStr(b, "s")
		b = appendMPStr(b, p.Asset)
		b = appendMPStr(b, "m")
		b = storeline.AppendMsgpackDecimal(b, p.Amount) // bin of MarshalBinary, as appendMPBin writes it
	}
	return b, nil
}

// msgpack format codes (the spec's names).
const (
	mpNil      = 0xc0
	mpBin8     = 0xc4
	mpBin16    = 0xc5
	mpBin32    = 0xc6
	mpExt8     = 0xc7
	mpUint16   = 0xcd
	mpUint64   = 0xcf
	mpFixExt4  = 0xd6
	mpFixExt8  = 0xd7
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpFixMap   = 0x80
	mpFixArray = 0x90
	mpFixStr   = 0xa0
	mpTimeExt  = 0xff // extension type -1
)

func appendMPStr(b []byte, s string) []byte {
	switch l := len(s); {
	case l < 32:
		b = append(b, mpFixStr|byte(l))
	case l < 256:
		b = append(b, mpStr8, byte(l))
	case l <= 0xffff:
		b = append(b, mpStr16, byte(l>>8), byte(l))
	default:
		b = append(b, mpStr32, byte(l>>24), byte(l>>16), byte(l>>8), byte(l))
	}
	return append(b, s...)
}

func appendMPBin(b []byte, v []byte) []byte {
	switch l := len(v); {
	case l < 256:
		b = append(b, mpBin8, byte(l))
	case l <= 0xffff:
		b = append(b, mpBin16, byte(l>>8), byte(l))
	default:
		b = append(b, mpBin32, byte(l>>24), byte(l>>16), byte(l>>8), byte(l))
	}
	return append(b, v...)
}

func appendMPArrayLen(b []byte, l int) []byte {
	switch {
	case l < 16:
		return append(b, mpFixArray|byte(l))
	case l <= 0xffff:
		return append(b, mpArray16, byte(l>>8), byte(l))
	}
	return append(b, mpArray32, byte(l>>24), byte(l>>16), byte(l>>8), byte(l))
}

func appendMPUint64(b []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, mpUint64), v)
}

// appendMPTime appends t as msgpack's timestamp extension, in the
// smallest of its three forms, as the msgpack package writes it.
func appendMPTime(b []byte, t time.Time) []byte {
	secs := uint64(t.Unix())
	if secs>>34 == 0 {
		data := uint64(t.Nanosecond())<<34 | secs
		if data&0xffffffff00000000 == 0 {
			return binary.BigEndian.AppendUint32(append(b, mpFixExt4, mpTimeExt), uint32(data))
		}
		return binary.BigEndian.AppendUint64(append(b, mpFixExt8, mpTimeExt), data)
	}
	b = append(b, mpExt8, 12, mpTimeExt)
	b = binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
	return binary.BigEndian.AppendUint64(b, secs)
}

// encodeBatch writes wb as msgpack.Marshal(wb) would, the records of new
// events (the hot path) without reflection.
func (c *frameCodec) encodeBatch(wb *walBatch) error {
	e := c.enc
	_ = e.EncodeMapLen(2)
	_ = e.EncodeString("h")
	_ = e.EncodeUint64(wb.HLC)
	_ = e.EncodeString("r")
	if wb.Recs == nil {
		return e.EncodeNil()
	}
	_ = e.EncodeArrayLen(len(wb.Recs))
	var zero [16]byte
	for i := range wb.Recs {
		r := &wb.Recs[i]
		if r.T != recEvent || len(r.Ev) == 0 || r.Origin != "" || r.ID != zero || r.Epoch != 0 || r.Seq != 0 ||
			r.Kind != "" || r.MID != "" || r.Master != nil || r.Key != "" || len(r.Val) != 0 {
			if err := e.Encode(r); err != nil {
				return err
			}
			continue
		}
		// Fields with omitempty are left out when empty, but for the
		// array ID, which is never empty to msgpack.
		_ = e.EncodeMapLen(3)
		_ = e.EncodeString("t")
		_ = e.EncodeUint8(r.T)
		_ = e.EncodeString("e")
		c.buf.Write(r.Ev)
		_ = e.EncodeString("i")
		_ = e.EncodeBytesLen(len(zero))
		c.buf.Write(zero[:])
	}
	return nil
}

// frame returns the frame of one batch, as frameBytes does, in the
// codec's buffer: valid until the codec's next use.
func (c *frameCodec) frame(lsn uint64, wb *walBatch) ([]byte, error) {
	c.reset()
	var hdr [frameHeader + 8]byte
	c.buf.Write(hdr[:])
	if err := c.encodeBatch(wb); err != nil {
		return nil, err
	}
	f := c.buf.Bytes()
	binary.BigEndian.PutUint64(f[frameHeader:], lsn)
	binary.BigEndian.PutUint32(f[0:], uint32(len(f)-frameHeader))
	binary.BigEndian.PutUint32(f[4:], crc32.Checksum(f[frameHeader:], castagnoli))
	return f, nil
}

// walFrame is one frame read back.
type walFrame struct {
	lsn  uint64
	body []byte
}

// readSegment returns the valid frames of one segment, in order, that
// have LSNs above after.
func readSegment(f File, size int64, after uint64) ([]walFrame, error) {
	buf := make([]byte, size)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	buf = buf[:n]
	var out []walFrame
	last := after
	for off := 0; off+frameOverhead <= len(buf); {
		ln := int(binary.BigEndian.Uint32(buf[off:]))
		if ln < 8 || off+frameHeader+ln > len(buf) {
			break // never written, or runs past the segment
		}
		payload := buf[off+frameHeader : off+frameHeader+ln]
		if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(buf[off+4:]) {
			break // torn
		}
		lsn := binary.BigEndian.Uint64(payload)
		if lsn <= last {
			break // stale
		}
		out = append(out, walFrame{lsn, payload[8:]})
		last = lsn
		off += frameHeader + ln
	}
	return out, nil
}

// openWAL lists the segments and calls fn for each valid frame in LSN
// order; fn sees every frame, applied or not, so it can check continuity.
func openWAL(fsys FS, dir string, segBytes int64, fn func(walFrame) error) (*wal, error) {
	w := &wal{fs: fsys, dir: dir, segBytes: segBytes, spare: make(chan prepared, 1)}
	if err := fsys.MkdirAll(dir); err != nil {
		return nil, err
	}
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var last uint64
	var nextIndex uint64 = 1
	for _, name := range names {
		if strings.HasSuffix(name, ".tmp") {
			if err := fsys.Remove(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
			continue
		}
		idx, ok := parseSegName(name)
		if !ok {
			continue
		}
		f, err := fsys.OpenFile(filepath.Join(dir, name), os.O_RDONLY, 0)
		if err != nil {
			return nil, err
		}
		frames, err := readSegment(f, segBytes, last)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		seg := segment{index: idx}
		for _, fr := range frames {
			if err := fn(fr); err != nil {
				return nil, err
			}
			seg.lastLSN, last = fr.lsn, fr.lsn
		}
		w.segs = append(w.segs, seg)
		nextIndex = idx + 1
	}
	// Never write after a possibly torn tail: start a fresh segment.
	first := w.prepare(nextIndex)
	if first.err != nil {
		return nil, first.err
	}
	w.cur = first.f
	w.segs = append(w.segs, segment{index: nextIndex})
	go func() { w.spare <- w.prepare(nextIndex + 1) }()
	return w, nil
}

// prepare creates a zero-filled, synced segment.
func (w *wal) prepare(index uint64) prepared {
	tmp := filepath.Join(w.dir, fmt.Sprintf("wal-%016x.tmp", index))
	f, err := w.fs.OpenFile(tmp, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return prepared{index: index, err: err}
	}
	fail := func(err error) prepared {
		f.Close()
		_ = w.fs.Remove(tmp)
		return prepared{index: index, err: fmt.Errorf("prepare WAL segment %d: %w", index, err)}
	}
	zeros := make([]byte, zeroChunk)
	for off := int64(0); off < w.segBytes; off += zeroChunk {
		n := min(int64(zeroChunk), w.segBytes-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	name := filepath.Join(w.dir, segName(index))
	if err := w.fs.Rename(tmp, name); err != nil {
		return fail(err)
	}
	if err := w.fs.SyncDir(w.dir); err != nil {
		return fail(err)
	}
	return prepared{index: index, f: f}
}

// errRoll is returned (wrapped) when the next segment could not be
// prepared: nothing was written, so the ledger is not poisoned.
var errRoll = errors.New("wal: no segment to roll to")

// write writes one frame, rolling to the next segment if it does not fit,
// and returns the file to sync.
func (w *wal) write(frame []byte, lsn uint64, writeFn func(File, []byte, int64) error) (File, error) {
	if w.off+int64(len(frame)) > w.segBytes {
		p := <-w.spare
		if p.err != nil {
			// Try again next time, in the background.
			go func() { w.spare <- w.prepare(p.index) }()
			return nil, fmt.Errorf("%w: %w", errRoll, p.err)
		}
		w.cur.Close()
		w.cur, w.off = p.f, 0
		w.mu.Lock()
		w.segs = append(w.segs, segment{index: p.index})
		w.mu.Unlock()
		go func() { w.spare <- w.prepare(p.index + 1) }()
	}
	if err := writeFn(w.cur, frame, w.off); err != nil {
		return nil, err
	}
	w.off += int64(len(frame))
	w.mu.Lock()
	w.segs[len(w.segs)-1].lastLSN = lsn
	w.mu.Unlock()
	return w.cur, nil
}

// dropThrough removes every segment but the current one whose frames all
// have LSNs at or below lsn (Badger holds them durably).
func (w *wal) dropThrough(lsn uint64) (int, error) {
	w.mu.Lock()
	var drop []segment
	keep := w.segs[:0:0]
	for i, s := range w.segs {
		if i < len(w.segs)-1 && s.lastLSN <= lsn {
			drop = append(drop, s)
			continue
		}
		keep = append(keep, s)
	}
	w.segs = keep
	w.mu.Unlock()
	for _, s := range drop {
		if err := w.fs.Remove(filepath.Join(w.dir, segName(s.index))); err != nil {
			return 0, err
		}
	}
	if len(drop) > 0 {
		return len(drop), w.fs.SyncDir(w.dir)
	}
	return 0, nil
}

// segments returns how many segments the WAL holds (for tests).
func (w *wal) segments() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.segs)
}

func (w *wal) close() {
	if w.cur != nil {
		w.cur.Close()
		w.cur = nil
	}
	// The spare is being prepared or ready; take it and close it. It stays
	// on disk as an empty segment, dropped by a later checkpoint.
	p := <-w.spare
	if p.f != nil {
		p.f.Close()
	}
}
