"""The built-in ``shop`` toolset: reproducible state, business rules, and the Toolset wrapper."""

from __future__ import annotations

import inspect
import json

import pytest

from sc_core.default_plugins import shop as shop_module
from sc_core.default_plugins.shop import ORDER_STATUSES, Shop
from sc_core.tools import ToolError, Toolset

TOOL_NAMES = {
    "find_customer_by_email",
    "get_customer",
    "update_customer_address",
    "list_products",
    "get_product",
    "get_order",
    "list_customer_orders",
    "place_order",
    "cancel_order",
    "modify_order_address",
    "return_items",
    "get_return",
}


@pytest.fixture
def shop() -> Shop:
    return Shop()


def order_with_status(shop: Shop, status: str) -> dict:
    return next(o for o in shop.state()["orders"].values() if o["status"] == status)


def product_with_stock(shop: Shop, at_least: int = 1) -> dict:
    return next(p for p in shop.state()["products"].values() if p["stock"] >= at_least)


# -- state ------------------------------------------------------------------------------------


def test_constructor_resets_to_seed_zero():
    other = Shop()
    other.reset(0)
    assert Shop().state() == other.state()


def test_same_seed_same_state_and_different_seeds_differ():
    a, b = Shop(), Shop()
    a.reset(7)
    b.reset(7)
    assert a.state() == b.state()
    b.reset(8)
    assert a.state() != b.state()
    assert json.dumps(a.state()) != json.dumps(Shop().state())


def test_reset_discards_changes(shop):
    fresh = shop.state()
    order = order_with_status(shop, "pending")
    shop.cancel_order(order["order_id"])
    assert shop.state() != fresh
    shop.reset(0)
    assert shop.state() == fresh


def test_seeded_database_shape(shop):
    state = shop.state()
    assert set(state) == {"customers", "products", "orders", "returns"}
    assert len(state["customers"]) == 8
    assert len(state["products"]) == 12
    assert len(state["orders"]) == 16
    assert state["returns"] == {}
    assert list(state["orders"]) == [f"O{1001 + i}" for i in range(16)]
    assert {o["status"] for o in state["orders"].values()} == set(ORDER_STATUSES)
    emails = [c["email"] for c in state["customers"].values()]
    assert len(set(emails)) == len(emails)
    for product in state["products"].values():
        assert isinstance(product["price"], float)
        assert product["price"] == round(product["price"], 2)
        assert isinstance(product["stock"], int) and product["stock"] >= 0
    for order in state["orders"].values():
        assert order["customer_id"] in state["customers"]
        assert order["items"]
        for item in order["items"]:
            assert item["product_id"] in state["products"]
            assert item["quantity"] >= 1
        expected = round(sum(i["quantity"] * i["price"] for i in order["items"]), 2)
        assert order["total"] == expected


def test_state_is_json_and_a_copy(shop):
    state = shop.state()
    assert json.loads(json.dumps(state)) == state
    order_id = next(iter(state["orders"]))
    state["orders"][order_id]["status"] = "tampered"
    state["products"].clear()
    state["customers"]["C101"]["address"]["city"] = "Nowhere"
    fresh = shop.state()
    assert fresh["orders"][order_id]["status"] != "tampered"
    assert len(fresh["products"]) == 12
    assert fresh["customers"]["C101"]["address"]["city"] != "Nowhere"


def test_tool_results_are_copies(shop):
    order_id = next(iter(shop.state()["orders"]))
    shop.get_order(order_id)["items"].clear()
    shop.get_product("P101")["stock"] = -5
    shop.get_customer("C101")["address"]["city"] = "Nowhere"
    assert shop.get_order(order_id)["items"]
    assert shop.get_product("P101")["stock"] >= 0
    assert shop.get_customer("C101")["address"]["city"] != "Nowhere"


# -- customers and products -------------------------------------------------------------------


def test_find_customer_by_email(shop):
    customer = shop.state()["customers"]["C103"]
    found = shop.find_customer_by_email("  " + customer["email"].upper() + " ")
    assert found["customer_id"] == "C103"
    assert found["order_ids"] == [
        oid for oid, o in shop.state()["orders"].items() if o["customer_id"] == "C103"
    ]
    with pytest.raises(ToolError, match="no customer"):
        shop.find_customer_by_email("nobody@example.com")


def test_update_customer_address_keeps_existing_orders(shop):
    old_orders = {oid: o["shipping_address"] for oid, o in shop.state()["orders"].items()}
    updated = shop.update_customer_address("C101", " 1 New St ", "Newtown", "01234")
    assert updated["address"] == {"street": "1 New St", "city": "Newtown", "zip_code": "01234"}
    state = shop.state()
    assert state["customers"]["C101"]["address"] == updated["address"]
    assert {oid: o["shipping_address"] for oid, o in state["orders"].items()} == old_orders
    with pytest.raises(ToolError, match="zip_code"):
        shop.update_customer_address("C101", "1 New St", "Newtown", "12ab5")
    with pytest.raises(ToolError, match="street"):
        shop.update_customer_address("C101", "  ", "Newtown", "12345")
    with pytest.raises(ToolError, match="unknown customer"):
        shop.update_customer_address("C999", "1 New St", "Newtown", "12345")


def test_list_products_filters(shop):
    everything = shop.list_products()
    assert [p["product_id"] for p in everything] == list(shop.state()["products"])
    in_stock = shop.list_products(in_stock_only=True)
    assert all(p["stock"] > 0 for p in in_stock)
    assert len(in_stock) == sum(p["stock"] > 0 for p in everything)
    category = everything[0]["category"]
    assert {p["category"] for p in shop.list_products(category=category.upper())} == {category}
    with pytest.raises(ToolError, match="unknown category"):
        shop.list_products(category="toys")


def test_unknown_ids_raise_tool_error(shop):
    for call, arg in [
        (shop.get_customer, "C999"),
        (shop.get_product, "P999"),
        (shop.get_order, "O9999"),
        (shop.get_return, "R1001"),
        (shop.cancel_order, "nope"),
        (shop.list_customer_orders, "X"),
    ]:
        with pytest.raises(ToolError, match="unknown"):
            call(arg)
    with pytest.raises(ToolError, match="unknown customer"):
        shop.place_order("C999", [{"product_id": "P101", "quantity": 1}])
    with pytest.raises(ToolError, match="unknown product"):
        shop.place_order("C101", [{"product_id": "P999", "quantity": 1}])


def test_list_customer_orders(shop):
    orders = shop.state()["orders"]
    customer_id = orders["O1001"]["customer_id"]
    listed = shop.list_customer_orders(customer_id)
    assert [o["order_id"] for o in listed] == [
        oid for oid, o in orders.items() if o["customer_id"] == customer_id
    ]
    status = orders["O1001"]["status"]
    assert all(o["status"] == status for o in shop.list_customer_orders(customer_id, status))
    assert "O1001" in [o["order_id"] for o in shop.list_customer_orders(customer_id, status)]
    with pytest.raises(ToolError, match="unknown status"):
        shop.list_customer_orders(customer_id, "lost")


# -- orders -----------------------------------------------------------------------------------


def test_place_then_cancel_restores_stock(shop):
    product = product_with_stock(shop, 2)
    before = shop.state()
    order = shop.place_order("C102", [{"product_id": product["product_id"], "quantity": 2}])
    assert order["order_id"] == "O1017"
    assert order["status"] == "pending"
    assert order["customer_id"] == "C102"
    assert order["total"] == round(2 * product["price"], 2)
    assert order["shipping_address"] == before["customers"]["C102"]["address"]
    assert shop.get_product(product["product_id"])["stock"] == product["stock"] - 2
    assert order["order_id"] in shop.get_customer("C102")["order_ids"]

    cancelled = shop.cancel_order(order["order_id"])
    assert cancelled["status"] == "cancelled"
    after = shop.state()
    assert after["products"] == before["products"]
    with pytest.raises(ToolError, match="only pending"):
        shop.cancel_order(order["order_id"])


def test_place_order_several_items_and_deterministic_ids(shop):
    products = [p for p in shop.state()["products"].values() if p["stock"] >= 2][:2]
    items = [{"product_id": p["product_id"], "quantity": 1} for p in products]
    first = shop.place_order("C101", items)
    second = shop.place_order("C101", items[:1])
    assert (first["order_id"], second["order_id"]) == ("O1017", "O1018")
    assert first["total"] == round(sum(p["price"] for p in products), 2)
    again = Shop()
    assert again.place_order("C101", items) == first


def test_cannot_order_more_than_stock_and_nothing_changes(shop):
    product = product_with_stock(shop, 1)
    other = next(
        p
        for p in shop.state()["products"].values()
        if p["product_id"] != product["product_id"] and p["stock"] >= 1
    )
    before = shop.state()
    with pytest.raises(ToolError, match="not enough stock"):
        shop.place_order(
            "C101",
            [
                {"product_id": other["product_id"], "quantity": 1},
                {"product_id": product["product_id"], "quantity": product["stock"] + 1},
            ],
        )
    assert shop.state() == before


def test_out_of_stock_product_cannot_be_ordered():
    shop = Shop()
    product = product_with_stock(shop, 1)
    shop.place_order("C101", [{"product_id": product["product_id"], "quantity": product["stock"]}])
    assert shop.get_product(product["product_id"])["stock"] == 0
    assert product["product_id"] not in [p["product_id"] for p in shop.list_products("", True)]
    with pytest.raises(ToolError, match="0 available"):
        shop.place_order("C102", [{"product_id": product["product_id"], "quantity": 1}])


@pytest.mark.parametrize(
    "items, message",
    [
        ([], "non-empty"),
        ("P101", "non-empty"),
        ([{"product_id": "P101"}], "exactly product_id and quantity"),
        ([{"product_id": "P101", "quantity": 1, "extra": 1}], "exactly product_id and quantity"),
        ([{"product_id": "P101", "quantity": 0}], "between 1 and"),
        ([{"product_id": "P101", "quantity": -2}], "between 1 and"),
        ([{"product_id": "P101", "quantity": 1.5}], "integer"),
        ([{"product_id": "P101", "quantity": True}], "integer"),
        ([{"product_id": 101, "quantity": 1}], "string"),
        (
            [{"product_id": "P101", "quantity": 1}, {"product_id": "P101", "quantity": 1}],
            "listed twice",
        ),
    ],
)
def test_place_order_rejects_bad_items(shop, items, message):
    before = shop.state()
    with pytest.raises(ToolError, match=message):
        shop.place_order("C101", items)
    assert shop.state() == before


@pytest.mark.parametrize("status", ["shipped", "delivered", "cancelled"])
def test_only_pending_orders_can_be_cancelled(shop, status):
    order = order_with_status(shop, status)
    before = shop.state()
    with pytest.raises(ToolError, match=f"is {status}; only pending"):
        shop.cancel_order(order["order_id"])
    assert shop.state() == before


def test_cancel_seeded_pending_order_restores_stock(shop):
    order = order_with_status(shop, "pending")
    before = shop.state()["products"]
    shop.cancel_order(order["order_id"])
    after = shop.state()["products"]
    for item in order["items"]:
        pid = item["product_id"]
        assert after[pid]["stock"] == before[pid]["stock"] + item["quantity"]


def test_modify_order_address(shop):
    order = order_with_status(shop, "pending")
    customer_address = shop.get_customer(order["customer_id"])["address"]
    updated = shop.modify_order_address(order["order_id"], "5 Side St", "Elsewhere", "54321")
    assert updated["shipping_address"] == {
        "street": "5 Side St",
        "city": "Elsewhere",
        "zip_code": "54321",
    }
    assert shop.get_order(order["order_id"])["shipping_address"] == updated["shipping_address"]
    assert shop.get_customer(order["customer_id"])["address"] == customer_address
    shipped = order_with_status(shop, "shipped")
    with pytest.raises(ToolError, match="only pending"):
        shop.modify_order_address(shipped["order_id"], "5 Side St", "Elsewhere", "54321")
    with pytest.raises(ToolError, match="zip_code"):
        shop.modify_order_address(order["order_id"], "5 Side St", "Elsewhere", "5432")


# -- returns ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "shipped", "cancelled"])
def test_cannot_return_undelivered_order(shop, status):
    order = order_with_status(shop, status)
    item = order["items"][0]
    with pytest.raises(ToolError, match="only delivered"):
        shop.return_items(order["order_id"], [{"product_id": item["product_id"], "quantity": 1}])
    assert shop.state()["returns"] == {}


def test_return_items_partial_then_full(shop):
    order = order_with_status(shop, "delivered")
    order_id = order["order_id"]
    first, *rest = order["items"]
    before = shop.state()["products"]

    record = shop.return_items(order_id, [{"product_id": first["product_id"], "quantity": 1}])
    assert record == {
        "return_id": "R1001",
        "order_id": order_id,
        "customer_id": order["customer_id"],
        "items": [{"product_id": first["product_id"], "quantity": 1, "price": first["price"]}],
        "refund": first["price"],
    }
    assert shop.get_return("R1001") == record
    assert shop.get_order(order_id)["return_ids"] == ["R1001"]
    stock = shop.get_product(first["product_id"])["stock"]
    assert stock == before[first["product_id"]]["stock"] + 1

    remaining = [{"product_id": first["product_id"], "quantity": first["quantity"] - 1}]
    remaining = [r for r in remaining if r["quantity"] > 0]
    remaining += [{"product_id": i["product_id"], "quantity": i["quantity"]} for i in rest]
    if remaining:
        assert shop.get_order(order_id)["status"] == "delivered"
        second = shop.return_items(order_id, remaining)
        assert second["return_id"] == "R1002"
        expected = round(sum(r["quantity"] * i["price"] for r, i in _pairs(remaining, order)), 2)
        assert second["refund"] == expected
    assert shop.get_order(order_id)["status"] == "returned"
    with pytest.raises(ToolError, match="is returned; only delivered"):
        shop.return_items(order_id, [{"product_id": first["product_id"], "quantity": 1}])


def _pairs(lines: list[dict], order: dict):
    by_id = {item["product_id"]: item for item in order["items"]}
    return [(line, by_id[line["product_id"]]) for line in lines]


def test_cannot_return_more_than_ordered_or_already_returned(shop):
    order = order_with_status(shop, "delivered")
    order_id = order["order_id"]
    item = order["items"][0]
    pid = item["product_id"]
    with pytest.raises(ToolError, match=f"{item['quantity']} returnable"):
        shop.return_items(order_id, [{"product_id": pid, "quantity": item["quantity"] + 1}])
    shop.return_items(order_id, [{"product_id": pid, "quantity": item["quantity"]}])
    with pytest.raises(ToolError, match="0 returnable"):
        shop.return_items(order_id, [{"product_id": pid, "quantity": 1}])
    ordered = {i["product_id"] for i in order["items"]}
    not_in_order = next(p for p in shop.state()["products"] if p not in ordered)
    with pytest.raises(ToolError, match="not in order"):
        shop.return_items(order_id, [{"product_id": not_in_order, "quantity": 1}])


def test_failed_return_changes_nothing(shop):
    order = order_with_status(shop, "delivered")
    items = [{"product_id": i["product_id"], "quantity": 1} for i in order["items"]]
    items.append({"product_id": "P999", "quantity": 1})
    before = shop.state()
    with pytest.raises(ToolError):
        shop.return_items(order["order_id"], items)
    assert shop.state() == before


# -- the Toolset wrapper ----------------------------------------------------------------------


def registered_factory():
    registered = {}
    shop_module.register_toolsets(register=lambda name, factory: registered.update({name: factory}))
    assert set(registered) == {"shop"}
    return registered["shop"]


@pytest.fixture
def toolset() -> Toolset:
    return registered_factory()()


def test_toolset_exposes_all_tools_with_schemas(toolset):
    assert set(toolset.tools) == TOOL_NAMES
    for name, tool in toolset.tools.items():
        method = getattr(Shop, name)
        params = [p for p in inspect.signature(method).parameters.values() if p.name != "self"]
        schema = tool.parameters
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert list(schema["properties"]) == [p.name for p in params]
        assert schema["required"] == [p.name for p in params if p.default is p.empty]
        assert tool.description and len(tool.description) > 30
        for prop in schema["properties"].values():
            assert prop.get("type") in {"string", "integer", "boolean", "array"}
            assert prop.get("description"), (name, prop)
        json.dumps(tool.spec())
    assert toolset.tools["place_order"].parameters["properties"]["items"] == {
        "type": "array",
        "items": {"type": "object"},
        "description": toolset.tools["place_order"].parameters["properties"]["items"][
            "description"
        ],
    }
    assert (
        toolset.tools["list_products"].parameters["properties"]["in_stock_only"]["default"] is False
    )


def test_toolset_call_reset_and_state(toolset):
    toolset.reset(3)
    fresh = toolset.state()
    reference = Shop()
    reference.reset(3)
    assert fresh == reference.state()
    product = product_with_stock(reference, 1)
    order = toolset.call(
        "place_order",
        {"customer_id": "C101", "items": [{"product_id": product["product_id"], "quantity": 1}]},
    )
    assert order["order_id"] == "O1017"
    assert toolset.state()["products"][product["product_id"]]["stock"] == product["stock"] - 1
    assert toolset.call("cancel_order", {"order_id": "O1017"})["status"] == "cancelled"
    assert toolset.state()["products"] == fresh["products"]
    assert toolset.call("list_products", {"in_stock_only": True})
    toolset.reset(3)
    assert toolset.state() == fresh


def test_toolset_call_turns_violations_into_tool_error(toolset):
    shipped = order_with_status_from(toolset.state(), "shipped")
    with pytest.raises(ToolError, match="only pending"):
        toolset.call("cancel_order", {"order_id": shipped})
    with pytest.raises(ToolError, match="unknown order"):
        toolset.call("get_order", {"order_id": "O42"})
    with pytest.raises(ToolError, match="missing argument"):
        toolset.call("place_order", {"customer_id": "C101"})
    with pytest.raises(ToolError, match="must be an array"):
        toolset.call("place_order", {"customer_id": "C101", "items": "P101"})
    with pytest.raises(ToolError, match="unknown argument"):
        toolset.call("get_order", {"order_id": "O1001", "verbose": True})
    with pytest.raises(ToolError, match="not enough stock"):
        toolset.call(
            "place_order",
            {"customer_id": "C101", "items": [{"product_id": "P101", "quantity": 100}]},
        )


def order_with_status_from(state: dict, status: str) -> str:
    return next(oid for oid, o in state["orders"].items() if o["status"] == status)


def test_instances_do_not_share_state():
    factory = registered_factory()
    a, b = factory(), factory()
    pending = order_with_status_from(a.state(), "pending")
    a.call("cancel_order", {"order_id": pending})
    assert b.state()["orders"][pending]["status"] == "pending"


def test_load_toolset_shop():
    from sc_core.tools import load_toolset

    toolset = load_toolset("shop").create()
    assert set(toolset.tools) == TOOL_NAMES
    assert toolset.state() == Shop().state()


def test_module_spec_loads_shop_class():
    from sc_core.tools import python_toolset

    toolset = python_toolset("sc_core.default_plugins.shop")()
    assert set(toolset.tools) == TOOL_NAMES
