"""Turns one residual policy into conditions over the resource, with Cedar's error rules kept.

Cedar skips a policy whose condition errors: a permit that errors grants nothing and a
forbid that errors forbids nothing. So for each expression `e` two conditions are built:
T(e), the rows where `e` evaluates to `true`, and F(e), the rows where it evaluates to
`false`; a row where `e` errors is in neither. A policy applies to the rows of T(body).

    T(a && b) = T(a) and T(b)          F(a && b) = F(a) or (T(a) and F(b))
    T(a || b) = T(a) or (F(a) and T(b)) F(a || b) = F(a) and F(b)
    T(!a)     = F(a)                    F(!a)     = T(a)
    T(if c then a else b) = (T(c) and T(a)) or (F(c) and T(b)), F likewise

Leaves are false wherever Cedar would error (an absent attribute, a value of another kind),
so the negative of a leaf spells out what must hold for Cedar to say `false`: F(x < 5) is
`x >= 5` (both Longs), F(x == 5) is `has x and not x == 5`. What cannot be expressed this
way becomes an `unsupported` node naming the expression, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pdp.errors import Inexpressible
from pdp.plan import condition as c
from pdp.plan import est, values
from pdp.plan.hierarchy import Hierarchy
from pdp.plan.operators import BOOLEAN_EXTENSIONS, BOOLEAN_SHAPED, NOT_BOOLEAN, VALUE_EXTENSIONS
from pdp.plan.probe import Evaluated, key

Pair = tuple[c.Node, c.Node]  # (T, F)
MAX_SIZE = 20_000  # nodes and listed entities of one condition: over it, a part is unsupported


@dataclass(frozen=True, slots=True)
class Operand:
    """A value-producing expression as a term, with the condition that it evaluates."""

    node: c.Node  # a term: {"var"}, {"attr"} or {"value"}
    ok: c.Node = field(default_factory=lambda: c.TRUE)  # where it evaluates without error
    error: bool = False  # a closed expression that always errors

    @property
    def is_value(self) -> bool:
        return "value" in self.node

    @property
    def is_resource(self) -> bool:
        return self.node.get("var") == "resource"

    @property
    def path(self) -> list[str] | None:
        return self.node.get("attr")


_ERROR = Operand(c.FALSE, c.FALSE, error=True)
_NEITHER: Pair = (c.FALSE, c.FALSE)


class Translator:
    """T and F of the expressions of one residual policy."""

    def __init__(
        self,
        policy: str,
        resource_type: str,
        hierarchy: Hierarchy,
        evaluated: dict[str, Evaluated],
    ) -> None:
        self._policy = policy
        self._resource_type = resource_type
        self._hierarchy = hierarchy
        self._evaluated = evaluated
        self._memo: dict[int, Pair] = {}
        self._open: set[int] = set()
        self._sizer = c.Sizer()

    def _is_closed(self, expr: est.Expr) -> bool:
        return id(expr) not in self._open

    def policy(self, residual: dict[str, Any]) -> c.Node:
        """T of a residual policy: the rows it applies to."""
        for scope in ("principal", "action", "resource"):
            if residual.get(scope, {}).get("op") != "All":  # Cedar folds scopes into conditions
                return c.unsupported(self._policy, scope, f"{scope} scope left unevaluated", True)
        parts = []
        for cond in residual.get("conditions", []):
            self._open |= est.open_nodes(cond["body"])
            truth, falsity = self.pair(cond["body"])
            parts.append(truth if cond["kind"] == "when" else falsity)
        return c.and_(*parts)

    def pair(self, expr: est.Expr) -> Pair:
        """(T, F) of `expr`; unsupported nodes for what cannot be expressed."""
        found = self._memo.get(id(expr))
        if found is None:
            try:
                found = self._pair(expr)
                if max(self._sizer.size(found[0]), self._sizer.size(found[1])) > MAX_SIZE:
                    raise Inexpressible(f"its condition is over {MAX_SIZE} nodes and entities")
            except Inexpressible as exc:
                found = self._unsupported(expr, exc.reason)
            except RecursionError:
                found = self._unsupported(expr, "nested too deeply to translate")
            self._memo[id(expr)] = found
        return found

    def _unsupported(self, expr: est.Expr, reason: str) -> Pair:
        text = est.text(expr)
        return (
            c.unsupported(self._policy, text, reason, True),
            c.unsupported(self._policy, text, reason, False),
        )

    # --- boolean expressions -------------------------------------------------------------

    def _pair(self, expr: est.Expr) -> Pair:
        op = est.operator(expr)
        if self._is_closed(expr):
            outcome = self._closed(expr)
            if outcome.error or not isinstance(outcome.value, bool):
                return _NEITHER  # an error, or a condition that is no boolean: an error too
            return c.const(outcome.value), c.const(not outcome.value)
        body = expr[op]
        if op == "&&":
            (tl, fl), (tr, fr) = self.pair(body["left"]), self.pair(body["right"])
            return c.and_(tl, tr), c.or_(fl, c.and_(tl, fr))
        if op == "||":
            (tl, fl), (tr, fr) = self.pair(body["left"]), self.pair(body["right"])
            return c.or_(tl, c.and_(fl, tr)), c.and_(fl, fr)
        if op == "!":
            truth, falsity = self.pair(body["arg"])
            return falsity, truth
        if op == "if-then-else":
            (tc, fc), (ta, fa), (tb, fb) = (
                self.pair(body["if"]),
                self.pair(body["then"]),
                self.pair(body["else"]),
            )
            return c.or_(c.and_(tc, ta), c.and_(fc, tb)), c.or_(c.and_(tc, fa), c.and_(fc, fb))
        if op in ("==", "!="):
            truth, falsity = self._equality(body["left"], body["right"])
            return (truth, falsity) if op == "==" else (falsity, truth)
        if op in c.NEGATED:
            return self._comparison(op, body["left"], body["right"])
        if op == "like":
            return self._like(body["left"], body["pattern"])
        if op == "is":
            return self._is(body)
        if op == "in":
            return self._in(body["left"], body["right"])
        if op == "has":
            return self._has(body["left"], body["attr"])
        if op in ("contains", "containsAll", "containsAny"):
            return self._set_test(op, body["left"], body["right"])
        if op == "isEmpty":
            subject = self.operand(body["arg"])
            if subject.error:
                return _NEITHER
            truth = c.leaf("isEmpty", subject.node)
            return truth, c.and_(c.leaf("kind", subject.node, kind=values.SET), c.not_(truth))
        if op == "." or est.is_resource(expr):
            subject = self.operand(expr)
            if subject.error:
                return _NEITHER
            return (
                c.leaf("==", subject.node, c.value(True)),
                c.leaf("==", subject.node, c.value(False)),
            )
        if op in NOT_BOOLEAN or op in VALUE_EXTENSIONS:
            return _NEITHER  # a Long, set, record or extension value, or an error: no boolean
        if op in BOOLEAN_EXTENSIONS:
            raise Inexpressible(f"extension function {op}() over the resource")
        if op in ("hasTag", "getTag"):
            raise Inexpressible("entity tags of the resource")
        raise Inexpressible(f"{op} over the resource")

    def _closed(self, expr: est.Expr) -> Evaluated:
        if "Value" in expr:
            return Evaluated(expr["Value"])
        outcome = self._evaluated.get(key(expr))
        if outcome is None or outcome.unknown:
            raise Inexpressible("Cedar's value for this part could not be read")
        return outcome

    # --- operands ------------------------------------------------------------------------

    def operand(self, expr: est.Expr) -> Operand:
        """`expr` as a term; Inexpressible when it is none (arithmetic over the resource, ...)."""
        if self._is_closed(expr):
            outcome = self._closed(expr)
            if outcome.error:
                return _ERROR
            return Operand(c.value(outcome.value))
        if est.is_resource(expr):
            return Operand(c.RESOURCE)
        op = est.operator(expr)
        if op == ".":
            base = self.operand(expr["."]["left"])
            if base.error:
                return _ERROR
            if base.is_resource:
                path = [expr["."]["attr"]]
            elif base.path is not None:
                path = [*base.path, expr["."]["attr"]]
            else:
                raise Inexpressible("attribute of a computed value")
            return Operand(c.attr(path), c.leaf("has", c.attr(path)))
        if op in ("+", "-", "*", "neg"):
            raise Inexpressible("arithmetic over the resource")
        raise Inexpressible(f"{op} as a value over the resource")

    def _boolean_or_operand(self, expr: est.Expr) -> Operand | Pair:
        if not self._is_closed(expr) and est.operator(expr) in BOOLEAN_SHAPED:
            return self.pair(expr)
        return self.operand(expr)

    @staticmethod
    def _no_extension(*operands: Operand) -> None:
        for operand in operands:
            if operand.is_value and _holds_extension(operand.node["value"]):
                raise Inexpressible("extension values (decimal, ip, datetime, duration)")

    # --- leaves --------------------------------------------------------------------------

    def _eq(self, left: Operand, right: Operand) -> c.Node:
        """The rows where both evaluate and are equal."""
        for one, other in ((left, right), (right, left)):
            if one.is_resource and other.is_value:
                uid = values.as_entity(other.node["value"])
                if uid is None or uid[0] != self._resource_type:
                    return c.FALSE
        if left.is_resource and right.is_resource:
            return c.TRUE
        return c.leaf("==", left.node, right.node)

    def _equality(self, left_expr: est.Expr, right_expr: est.Expr) -> Pair:
        left = self._boolean_or_operand(left_expr)
        right = self._boolean_or_operand(right_expr)
        if isinstance(left, Operand) and isinstance(right, Operand):
            if left.error or right.error:
                return _NEITHER
            self._no_extension(left, right)
            truth = self._eq(left, right)
            return truth, c.and_(left.ok, right.ok, c.not_(truth))
        if isinstance(left, Operand) or isinstance(right, Operand):
            term, pair = (left, right) if isinstance(left, Operand) else (right, left)
            assert isinstance(term, Operand) and isinstance(pair, tuple)
            tb, fb = pair
            if term.error:
                return _NEITHER
            self._no_extension(term)
            is_true = self._eq(term, Operand(c.value(True)))
            is_false = self._eq(term, Operand(c.value(False)))
            truth = c.or_(c.and_(is_true, tb), c.and_(is_false, fb))
            falsity = c.and_(
                term.ok, c.or_(c.and_(tb, c.not_(is_true)), c.and_(fb, c.not_(is_false)))
            )
            return truth, falsity
        (t1, f1), (t2, f2) = left, right
        return c.or_(c.and_(t1, t2), c.and_(f1, f2)), c.or_(c.and_(t1, f2), c.and_(f1, t2))

    def _comparison(self, op: str, left_expr: est.Expr, right_expr: est.Expr) -> Pair:
        left = self._boolean_or_operand(left_expr)
        right = self._boolean_or_operand(right_expr)
        if not (isinstance(left, Operand) and isinstance(right, Operand)):
            return _NEITHER  # a boolean is no Long: Cedar errors
        if left.error or right.error or left.is_resource or right.is_resource:
            return _NEITHER
        self._no_extension(left, right)
        for side in (left, right):
            if side.is_value and values.kind_of(side.node["value"]) != values.LONG:
                return _NEITHER
        return c.leaf(op, left.node, right.node), c.leaf(c.NEGATED[op], left.node, right.node)

    def _like(self, left_expr: est.Expr, pattern: list[Any]) -> Pair:
        subject = self.operand(left_expr)
        if subject.error or subject.is_resource:
            return _NEITHER
        truth = c.leaf("like", subject.node, pattern=_pattern(pattern))
        return truth, c.and_(c.leaf("kind", subject.node, kind=values.STRING), c.not_(truth))

    def _is(self, body: dict[str, Any]) -> Pair:
        subject = self.operand(body["left"])
        entity_type = body["entity_type"]
        if subject.error:
            return _NEITHER
        if subject.is_resource:
            truth = c.const(entity_type == self._resource_type)
            pair = truth, c.not_(truth)
        else:
            truth = c.leaf("is", subject.node, entity_type=entity_type)
            pair = truth, c.and_(c.leaf("kind", subject.node, kind=values.ENTITY), c.not_(truth))
        if "in" not in body:
            return pair
        (t_is, f_is), (t_in, f_in) = pair, self._in(body["left"], body["in"])
        return c.and_(t_is, t_in), c.or_(f_is, c.and_(t_is, f_in))

    def _in(self, left_expr: est.Expr, right_expr: est.Expr) -> Pair:
        left, right = self.operand(left_expr), self.operand(right_expr)
        if left.error or right.error:
            return _NEITHER
        if right.is_value:  # resource in Tenant::"t", resource.owner in [A, B]
            targets = values.entity_uids(right.node["value"])
            if targets is None:
                return _NEITHER
            below: set[tuple[str, str]] = set(targets)
            for target in targets:
                below |= self._hierarchy.descendants(target)
            truth = c.leaf("in", left.node, entities=_uids(below))
            if left.is_resource:
                return truth, c.not_(truth)
            entity = c.leaf("kind", left.node, kind=values.ENTITY)
            return truth, c.and_(entity, c.not_(truth))
        if left.is_value:  # principal in resource, principal in resource.tenant
            uid = values.as_entity(left.node["value"])
            if uid is None:
                return _NEITHER
            above = {uid} | self._hierarchy.ancestors(uid)
            if right.is_resource:
                mine = {u for u in above if u[0] == self._resource_type}
                truth = c.leaf("contains", c.value(_entity_values(mine)), c.RESOURCE)
                return (truth, c.not_(truth)) if mine else (c.FALSE, c.TRUE)
            listed = c.value(_entity_values(above))
            one = c.leaf("contains", listed, right.node)
            several = c.leaf("containsAny", right.node, listed)
            entity = c.leaf("kind", right.node, kind=values.ENTITY)
            entities = c.leaf("kind", right.node, kind=values.ENTITY_SET)
            truth = c.or_(one, c.and_(entities, several))
            falsity = c.or_(c.and_(entity, c.not_(one)), c.and_(entities, c.not_(several)))
            return truth, falsity
        raise Inexpressible("`in` between two values of the resource")

    def _has(self, left_expr: est.Expr, name: str) -> Pair:
        subject = self.operand(left_expr)
        if subject.error:
            return _NEITHER
        if subject.is_resource:
            truth = c.leaf("has", c.attr([name]))
            return truth, c.not_(truth)
        if subject.path is None:
            raise Inexpressible("`has` on a computed value")
        truth = c.leaf("has", c.attr([*subject.path, name]))
        return truth, c.and_(c.leaf("kind", subject.node, kind=values.RECORD), c.not_(truth))

    def _set_test(self, op: str, left_expr: est.Expr, right_expr: est.Expr) -> Pair:
        left, right = self.operand(left_expr), self.operand(right_expr)
        if left.error or right.error:
            return _NEITHER
        self._no_extension(left, right)
        truth = c.leaf(op, left.node, right.node)
        is_set = c.leaf("kind", left.node, kind=values.SET)
        if op == "contains":
            return truth, c.and_(is_set, right.ok, c.not_(truth))
        other_set = c.leaf("kind", right.node, kind=values.SET)
        return truth, c.and_(is_set, other_set, c.not_(truth))


def _holds_extension(value: Any) -> bool:
    if values.is_extension(value):
        return True
    if isinstance(value, list):
        return any(_holds_extension(v) for v in value)
    if isinstance(value, dict) and values.as_entity(value) is None:
        return any(_holds_extension(v) for v in value.values())
    return False


def _pattern(parts: list[Any]) -> list[Any]:
    """Cedar's pattern elements, adjacent literal characters joined."""
    merged: list[Any] = []
    for part in parts:
        if part == "Wildcard":
            if not merged or merged[-1] != "Wildcard":
                merged.append("Wildcard")
        elif merged and isinstance(merged[-1], dict):
            merged[-1] = {"Literal": merged[-1]["Literal"] + part["Literal"]}
        else:
            merged.append({"Literal": part["Literal"]})
    return merged


def _uids(uids: set[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"type": t, "id": i} for t, i in sorted(uids)]


def _entity_values(uids: set[tuple[str, str]]) -> list[dict[str, Any]]:
    return [values.entity_json(t, i) for t, i in sorted(uids)]
