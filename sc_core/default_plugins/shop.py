"""The ``shop`` toolset: a small, stateful online store (customers, products, orders, returns).

In the spirit of tau-bench retail: a customer-service agent looks customers up, places, cancels
and modifies orders, and returns delivered items, under business rules that each tool enforces
with a :class:`~sc_core.tools.ToolError`. ``reset(seed)`` builds a reproducible database and
every id the tools create is deterministic for a given seed and sequence of calls.
"""

from __future__ import annotations

import copy
import random
import re
from typing import Any

from sc_core import hookimpl
from sc_core.default_plugins import seed_examples
from sc_core.tools import ToolError, Toolset

ORDER_STATUSES = ("pending", "shipped", "delivered", "cancelled")
"""Seeded order statuses; an order whose items were all returned becomes ``returned``."""

N_CUSTOMERS = 8
N_PRODUCTS = 12
N_ORDERS = 16
MAX_QUANTITY = 100

_FIRST_NAMES = (
    "Ada", "Bruno", "Chloe", "Diego", "Elena", "Farid", "Grace", "Hiro",
    "Ines", "Jonas", "Kavya", "Liam", "Mei", "Noah", "Olga", "Priya",
)  # fmt: skip
_LAST_NAMES = (
    "Silva", "Novak", "Okafor", "Larsen", "Moreau", "Tanaka", "Rossi", "Khan",
    "Weber", "Garcia", "Nguyen", "Schmidt",
)  # fmt: skip
_STREETS = ("Oak St", "Maple Ave", "Pine Rd", "Cedar Ln", "Elm St", "Birch Blvd", "Lake Dr")
_CITIES = ("Springfield", "Riverton", "Lakeside", "Fairview", "Greenville", "Madison")
_CATALOG = (
    ("Wireless Mouse", "electronics"),
    ("Mechanical Keyboard", "electronics"),
    ("USB-C Charger", "electronics"),
    ("Bluetooth Speaker", "electronics"),
    ("Noise-Cancelling Headphones", "electronics"),
    ("Desk Lamp", "home"),
    ("Coffee Grinder", "home"),
    ("Chef's Knife", "home"),
    ("Cotton Bath Towel", "home"),
    ("Ceramic Mug", "home"),
    ("Camping Tent", "outdoors"),
    ("Hiking Backpack", "outdoors"),
    ("Water Bottle", "outdoors"),
    ("Trekking Poles", "outdoors"),
    ("Rain Jacket", "clothing"),
    ("Wool Socks", "clothing"),
    ("Running Shoes", "clothing"),
    ("Baseball Cap", "clothing"),
)
CATEGORIES = tuple(sorted({category for _, category in _CATALOG}))
_ZIP = re.compile(r"^\d{5}$")


def _money(value: float) -> float:
    return round(float(value), 2)


class Shop:
    """An online store's customer-service back office."""

    EXAMPLES = seed_examples("shop")

    def __init__(self) -> None:
        self.reset(0)

    # -- environment ----------------------------------------------------------------------------

    def reset(self, seed: int) -> None:
        """Build a fresh database determined by ``seed``."""
        rng = random.Random(seed)
        self._customers: dict[str, dict[str, Any]] = {}
        self._products: dict[str, dict[str, Any]] = {}
        self._orders: dict[str, dict[str, Any]] = {}
        self._returns: dict[str, dict[str, Any]] = {}

        first_names = rng.sample(_FIRST_NAMES, N_CUSTOMERS)
        for index, first in enumerate(first_names):
            last = rng.choice(_LAST_NAMES)
            customer_id = f"C{101 + index}"
            self._customers[customer_id] = {
                "customer_id": customer_id,
                "name": f"{first} {last}",
                "email": f"{first.lower()}.{last.lower()}@example.com",
                "address": self._random_address(rng),
            }

        catalog = sorted(rng.sample(_CATALOG, N_PRODUCTS))
        for index, (name, category) in enumerate(catalog):
            product_id = f"P{101 + index}"
            self._products[product_id] = {
                "product_id": product_id,
                "name": name,
                "category": category,
                "price": _money(rng.uniform(4, 250)),
                "stock": rng.choice((0, 1, 2, 3, 5, 8, 10, 15, 20, 25)),
            }

        statuses = list(ORDER_STATUSES) * 2
        statuses += [rng.choice(ORDER_STATUSES) for _ in range(N_ORDERS - len(statuses))]
        rng.shuffle(statuses)
        customer_ids = sorted(self._customers)
        for status in statuses:
            customer = self._customers[rng.choice(customer_ids)]
            products = sorted(rng.sample(sorted(self._products), rng.randint(1, 3)))
            order = self._new_order(
                customer, [(product_id, rng.randint(1, 3)) for product_id in products]
            )
            order["status"] = status

    def state(self) -> dict[str, Any]:
        """The whole database as plain JSON data (a deep copy), keyed and ordered by id."""
        return copy.deepcopy(
            {
                "customers": self._customers,
                "products": self._products,
                "orders": self._orders,
                "returns": self._returns,
            }
        )

    # -- helpers (private: not tools) -----------------------------------------------------------

    @staticmethod
    def _random_address(rng: random.Random) -> dict[str, str]:
        return {
            "street": f"{rng.randint(1, 999)} {rng.choice(_STREETS)}",
            "city": rng.choice(_CITIES),
            "zip_code": f"{rng.randint(10000, 99999)}",
        }

    def _customer(self, customer_id: str) -> dict[str, Any]:
        customer = self._customers.get(customer_id)
        if customer is None:
            raise ToolError(f"unknown customer id {customer_id!r} (ids look like 'C101')")
        return customer

    def _product(self, product_id: str) -> dict[str, Any]:
        product = self._products.get(product_id)
        if product is None:
            raise ToolError(f"unknown product id {product_id!r} (ids look like 'P101')")
        return product

    def _order(self, order_id: str) -> dict[str, Any]:
        order = self._orders.get(order_id)
        if order is None:
            raise ToolError(f"unknown order id {order_id!r} (ids look like 'O1001')")
        return order

    def _new_order(self, customer: dict[str, Any], lines: list[tuple[str, int]]) -> dict[str, Any]:
        order_id = f"O{1001 + len(self._orders)}"
        items = []
        for product_id, quantity in lines:
            product = self._products[product_id]
            items.append(
                {
                    "product_id": product_id,
                    "name": product["name"],
                    "quantity": quantity,
                    "price": product["price"],
                }
            )
        order = {
            "order_id": order_id,
            "customer_id": customer["customer_id"],
            "status": "pending",
            "items": items,
            "total": _money(sum(item["quantity"] * item["price"] for item in items)),
            "shipping_address": dict(customer["address"]),
            "return_ids": [],
        }
        self._orders[order_id] = order
        return order

    @staticmethod
    def _address(street: str, city: str, zip_code: str) -> dict[str, str]:
        street, city, zip_code = (str(value).strip() for value in (street, city, zip_code))
        if not street:
            raise ToolError("street must not be empty")
        if not city:
            raise ToolError("city must not be empty")
        if not _ZIP.match(zip_code):
            raise ToolError(f"zip_code must be exactly 5 digits, got {zip_code!r}")
        return {"street": street, "city": city, "zip_code": zip_code}

    @staticmethod
    def _lines(items: Any) -> list[tuple[str, int]]:
        """Validate a list of {"product_id", "quantity"} objects; each product at most once."""
        if not isinstance(items, list) or not items:
            raise ToolError("items must be a non-empty list of {product_id, quantity} objects")
        lines: list[tuple[str, int]] = []
        for item in items:
            if not isinstance(item, dict) or set(item) != {"product_id", "quantity"}:
                raise ToolError(
                    "each item must be an object with exactly product_id and quantity, "
                    f"got {item!r}"
                )
            product_id, quantity = item["product_id"], item["quantity"]
            if not isinstance(product_id, str):
                raise ToolError(f"product_id must be a string, got {product_id!r}")
            if isinstance(quantity, bool) or not isinstance(quantity, int):
                raise ToolError(f"quantity of {product_id} must be an integer, got {quantity!r}")
            if not 1 <= quantity <= MAX_QUANTITY:
                raise ToolError(
                    f"quantity of {product_id} must be between 1 and {MAX_QUANTITY}, got {quantity}"
                )
            if any(product_id == seen for seen, _ in lines):
                raise ToolError(f"product {product_id} is listed twice; list each product once")
            lines.append((product_id, quantity))
        return lines

    def _returned(self, order: dict[str, Any]) -> dict[str, int]:
        returned: dict[str, int] = {}
        for return_id in order["return_ids"]:
            for item in self._returns[return_id]["items"]:
                returned[item["product_id"]] = (
                    returned.get(item["product_id"], 0) + item["quantity"]
                )
        return returned

    # -- customers ------------------------------------------------------------------------------

    def find_customer_by_email(self, email: str) -> dict[str, Any]:
        """Find a customer by email address (case-insensitive) and return their profile.

        The profile has customer_id, name, email, address and the ids of their orders.

        Args:
            email: The customer's email address, e.g. "ada.silva@example.com".
        """
        wanted = email.strip().lower()
        for customer_id, customer in self._customers.items():
            if customer["email"] == wanted:
                return self.get_customer(customer_id)
        raise ToolError(f"no customer with email {email!r}")

    def get_customer(self, customer_id: str) -> dict[str, Any]:
        """Get a customer's profile: customer_id, name, email, address and their order ids.

        Args:
            customer_id: The customer id, e.g. "C101".
        """
        customer = copy.deepcopy(self._customer(customer_id))
        customer["order_ids"] = [
            order_id
            for order_id, order in self._orders.items()
            if order["customer_id"] == customer_id
        ]
        return customer

    def update_customer_address(
        self, customer_id: str, street: str, city: str, zip_code: str
    ) -> dict[str, Any]:
        """Change a customer's default address and return the updated profile.

        Existing orders keep their shipping address (use modify_order_address for a pending
        order); orders placed afterwards ship to the new address.

        Args:
            customer_id: The customer id, e.g. "C101".
            street: Street and house number, e.g. "12 Oak St"; must not be empty.
            city: City name; must not be empty.
            zip_code: Exactly 5 digits, e.g. "02139".
        """
        customer = self._customer(customer_id)
        customer["address"] = self._address(street, city, zip_code)
        return self.get_customer(customer_id)

    # -- products -------------------------------------------------------------------------------

    def list_products(
        self, category: str = "", in_stock_only: bool = False
    ) -> list[dict[str, Any]]:
        """List the catalog: each product's product_id, name, category, price and stock.

        Args:
            category: Only products of this category (electronics, home, outdoors or clothing);
                empty for all categories.
            in_stock_only: If true, leave out products whose stock is 0.
        """
        category = category.strip().lower()
        if category and category not in CATEGORIES:
            raise ToolError(f"unknown category {category!r}; categories: {', '.join(CATEGORIES)}")
        return [
            dict(product)
            for product in self._products.values()
            if (not category or product["category"] == category)
            and (not in_stock_only or product["stock"] > 0)
        ]

    def get_product(self, product_id: str) -> dict[str, Any]:
        """Get one product: product_id, name, category, price and units in stock.

        Args:
            product_id: The product id, e.g. "P101".
        """
        return dict(self._product(product_id))

    # -- orders ---------------------------------------------------------------------------------

    def get_order(self, order_id: str) -> dict[str, Any]:
        """Get an order: customer_id, status, items, total, shipping_address and return_ids.

        Status is one of pending, shipped, delivered, cancelled or returned (every item was
        returned). Each item has product_id, name, quantity and the unit price paid.

        Args:
            order_id: The order id, e.g. "O1001".
        """
        return copy.deepcopy(self._order(order_id))

    def list_customer_orders(self, customer_id: str, status: str = "") -> list[dict[str, Any]]:
        """List a customer's orders, oldest first, as order_id, status and total.

        Args:
            customer_id: The customer id, e.g. "C101".
            status: Only orders with this status (pending, shipped, delivered, cancelled or
                returned); empty for all.
        """
        self._customer(customer_id)
        status = status.strip().lower()
        if status and status not in (*ORDER_STATUSES, "returned"):
            raise ToolError(
                f"unknown status {status!r}; statuses: {', '.join(ORDER_STATUSES)}, returned"
            )
        return [
            {"order_id": order_id, "status": order["status"], "total": order["total"]}
            for order_id, order in self._orders.items()
            if order["customer_id"] == customer_id and (not status or order["status"] == status)
        ]

    def place_order(self, customer_id: str, items: list[dict]) -> dict[str, Any]:
        """Place a new order for a customer, shipped to their current address; returns the order.

        The order starts as pending, each item is charged at the product's current price, and the
        ordered quantities are taken out of stock. Nothing changes if any item cannot be ordered.

        Args:
            customer_id: The customer id, e.g. "C101".
            items: The products to order, each product at most once, as objects like
                {"product_id": "P101", "quantity": 2}; quantity is between 1 and 100 and at most
                the product's stock.
        """
        customer = self._customer(customer_id)
        lines = self._lines(items)
        for product_id, quantity in lines:
            product = self._product(product_id)
            if quantity > product["stock"]:
                raise ToolError(
                    f"not enough stock for {product_id} ({product['name']}): "
                    f"{quantity} requested, {product['stock']} available"
                )
        for product_id, quantity in lines:
            self._products[product_id]["stock"] -= quantity
        return copy.deepcopy(self._new_order(customer, lines))

    def cancel_order(self, order_id: str) -> dict[str, Any]:
        """Cancel a pending order and put its items back in stock; returns the updated order.

        Only pending orders can be cancelled: shipped or delivered orders cannot.

        Args:
            order_id: The order id, e.g. "O1001".
        """
        order = self._order(order_id)
        if order["status"] != "pending":
            raise ToolError(
                f"order {order_id} is {order['status']}; only pending orders can be cancelled"
            )
        for item in order["items"]:
            self._products[item["product_id"]]["stock"] += item["quantity"]
        order["status"] = "cancelled"
        return copy.deepcopy(order)

    def modify_order_address(
        self, order_id: str, street: str, city: str, zip_code: str
    ) -> dict[str, Any]:
        """Change the shipping address of a pending order; returns the updated order.

        The customer's default address does not change.

        Args:
            order_id: The order id, e.g. "O1001".
            street: Street and house number, e.g. "12 Oak St"; must not be empty.
            city: City name; must not be empty.
            zip_code: Exactly 5 digits, e.g. "02139".
        """
        order = self._order(order_id)
        if order["status"] != "pending":
            raise ToolError(
                f"order {order_id} is {order['status']}; "
                "only pending orders can have their address changed"
            )
        order["shipping_address"] = self._address(street, city, zip_code)
        return copy.deepcopy(order)

    # -- returns --------------------------------------------------------------------------------

    def return_items(self, order_id: str, items: list[dict]) -> dict[str, Any]:
        """Return items of a delivered order for a refund; returns the new return record.

        Each returned product must be in the order, and its quantity at most what was ordered
        minus what was already returned. The refund is the price paid for the returned units; the
        units go back into stock. Once every unit has been returned the order's status becomes
        returned. The return record has return_id, order_id, customer_id, items and refund.

        Args:
            order_id: The order id, e.g. "O1001"; the order must be delivered.
            items: The units to return, each product at most once, as objects like
                {"product_id": "P101", "quantity": 1}.
        """
        order = self._order(order_id)
        if order["status"] != "delivered":
            raise ToolError(
                f"order {order_id} is {order['status']}; only delivered orders can be returned"
            )
        lines = self._lines(items)
        ordered = {item["product_id"]: item for item in order["items"]}
        returned = self._returned(order)
        for product_id, quantity in lines:
            if product_id not in ordered:
                raise ToolError(f"product {product_id} is not in order {order_id}")
            left = ordered[product_id]["quantity"] - returned.get(product_id, 0)
            if quantity > left:
                raise ToolError(
                    f"cannot return {quantity} of {product_id} from order {order_id}: "
                    f"{left} returnable ({ordered[product_id]['quantity']} ordered, "
                    f"{returned.get(product_id, 0)} already returned)"
                )
        return_id = f"R{1001 + len(self._returns)}"
        return_items = [
            {"product_id": product_id, "quantity": quantity, "price": ordered[product_id]["price"]}
            for product_id, quantity in lines
        ]
        record = {
            "return_id": return_id,
            "order_id": order_id,
            "customer_id": order["customer_id"],
            "items": return_items,
            "refund": _money(sum(item["quantity"] * item["price"] for item in return_items)),
        }
        self._returns[return_id] = record
        order["return_ids"].append(return_id)
        for product_id, quantity in lines:
            self._products[product_id]["stock"] += quantity
            returned[product_id] = returned.get(product_id, 0) + quantity
        if all(returned.get(pid, 0) >= item["quantity"] for pid, item in ordered.items()):
            order["status"] = "returned"
        return copy.deepcopy(record)

    def get_return(self, return_id: str) -> dict[str, Any]:
        """Get a return record: return_id, order_id, customer_id, returned items and refund.

        Args:
            return_id: The return id, e.g. "R1001".
        """
        record = self._returns.get(return_id)
        if record is None:
            raise ToolError(f"unknown return id {return_id!r} (ids look like 'R1001')")
        return copy.deepcopy(record)


@hookimpl
def register_toolsets(register):
    register("shop", lambda: Toolset.from_object(Shop(), "shop"))
