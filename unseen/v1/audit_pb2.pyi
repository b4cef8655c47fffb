from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ReadLedgerRequest(_message.Message):
    __slots__ = ("supervisor_key_id", "start", "end", "issued_at", "signature")
    SUPERVISOR_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    supervisor_key_id: str
    start: int
    end: int
    issued_at: str
    signature: bytes
    def __init__(self, supervisor_key_id: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., issued_at: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class ReadLedgerReply(_message.Message):
    __slots__ = ("range", "checkpoint")
    RANGE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    range: str
    checkpoint: str
    def __init__(self, range: _Optional[str] = ..., checkpoint: _Optional[str] = ...) -> None: ...
