"""Domain model: ids, enums, exact values and the records on every topic."""

from algostream.model.enums import (
    BookUpdateKind,
    ControlAction,
    CostMethod,
    IntegrityKind,
    OrderStatus,
    OrderType,
    RiskEventKind,
    Side,
    TimeInForce,
    TradingState,
)
from algostream.model.errors import ModelError, RecordDecodeError
from algostream.model.ids import derive_id, instrument_id, split_instrument
from algostream.model.records import (
    RECORD_TYPES,
    Bar,
    BookIntegrity,
    BookTop,
    BookUpdate,
    ControlCommand,
    DeadLetter,
    FeatureVector,
    Level,
    OrderEvent,
    OrderRejected,
    OrderRequest,
    PnL,
    Position,
    RawFrame,
    Record,
    RiskEvent,
    Signal,
    TradeTick,
)
from algostream.model.values import Money, Price, Quantity, SignedQuantity, to_decimal

__all__ = [
    "RECORD_TYPES", "Bar", "BookIntegrity", "BookTop", "BookUpdate", "BookUpdateKind",
    "ControlAction", "ControlCommand", "CostMethod", "DeadLetter", "FeatureVector",
    "IntegrityKind", "Level", "ModelError", "Money", "OrderEvent", "OrderRejected",
    "OrderRequest", "OrderStatus", "OrderType", "PnL", "Position", "Price", "Quantity",
    "RawFrame", "Record", "RecordDecodeError", "RiskEvent", "RiskEventKind", "Side",
    "Signal", "SignedQuantity", "TimeInForce", "TradeTick", "TradingState", "derive_id",
    "instrument_id", "split_instrument", "to_decimal",
]
