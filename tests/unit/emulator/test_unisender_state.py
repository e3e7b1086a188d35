"""The emulated UniSender contact base: importContacts and export semantics without HTTP."""

from __future__ import annotations

import pytest

from sync_engine.emulator import EmulatedContact
from sync_engine.emulator._catalog import Catalog
from sync_engine.emulator._model import ArgumentError, ExportFilter
from sync_engine.emulator._unisender_state import ContactBase, ImportOutcome


@pytest.fixture
def base() -> ContactBase:
    """A base with lists 1..3 and a user field ``Name``."""
    base = ContactBase()
    for title in ("One", "Two", "Three"):
        base.catalog.add_list(title)
    base.catalog.add_field("Name")
    return base


def only(base: ContactBase) -> EmulatedContact:
    (contact,) = base.contacts()
    return contact


def codes(outcome: ImportOutcome) -> list[tuple[int, str]]:
    return [(entry.index, entry.code) for entry in outcome.log]


def test_insert_normalises_email_and_gives_new_status(base: ContactBase) -> None:
    """A new address is stored trimmed and lower-cased, with status new and the given fields."""
    outcome = base.import_contacts(["email", "Name"], [["  Ann@Example.COM ", "Ann"]])

    assert outcome.result() == {
        "total": 1,
        "inserted": 1,
        "updated": 0,
        "deleted": 0,
        "new_emails": 1,
        "invalid": 0,
        "log": [],
    }
    contact = only(base)
    assert (contact.email, contact.email_status, contact.fields) == (
        "ann@example.com",
        "new",
        {"Name": "Ann"},
    )
    assert contact.id > 0


def test_second_import_updates_the_same_contact(base: ContactBase) -> None:
    """Importing a known address again updates it instead of inserting a duplicate."""
    base.import_contacts(["email", "Name"], [["ann@example.com", "Ann"]])
    outcome = base.import_contacts(["email", "Name"], [["ANN@example.com", "Anna"]])

    assert (outcome.inserted, outcome.updated) == (0, 1)
    assert only(base).fields == {"Name": "Anna"}


def test_empty_user_field_is_stored_empty(base: ContactBase) -> None:
    """An empty cell sets the user field to the empty string rather than leaving it alone."""
    base.import_contacts(["email", "Name"], [["ann@example.com", "Ann"]])
    base.import_contacts(["email", "Name"], [["ann@example.com", ""]])
    assert only(base).fields == {"Name": ""}


def test_missing_cells_are_empty(base: ContactBase) -> None:
    """A row shorter than field_names reads its missing cells as empty."""
    outcome = base.import_contacts(["email", "Name", "tags"], [["ann@example.com"]])
    assert outcome.inserted == 1
    assert (only(base).fields, only(base).tags) == ({"Name": ""}, set())


@pytest.mark.parametrize(
    ("current", "given", "expected"),
    [
        ("active", "inactive", "inactive"),
        ("inactive", "active", "active"),
        ("unsubscribed", "active", "unsubscribed"),
        ("blocked", "active", "blocked"),
        ("activation_requested", "active", "activation_requested"),
        ("new", "active", "new"),
    ],
)
def test_status_changes_only_from_active_or_inactive(
    base: ContactBase, current: str, given: str, expected: str
) -> None:
    """The documented status rule: only an active or inactive address can change status."""
    base.seed([EmulatedContact(email="ann@example.com", email_status=current)])
    outcome = base.import_contacts(["email", "email_status"], [["ann@example.com", given]])
    assert outcome.updated == 1
    assert only(base).email_status == expected


def test_new_address_may_be_imported_unsubscribed(base: ContactBase) -> None:
    """A new address takes the status the row gives, and does not count as a new email."""
    outcome = base.import_contacts(["email", "email_status"], [["ann@example.com", "unsubscribed"]])
    assert (outcome.inserted, outcome.new_emails) == (1, 0)
    assert only(base).email_status == "unsubscribed"


def test_new_emails_counts_existing_addresses_still_new(base: ContactBase) -> None:
    """new_emails includes previously existing addresses whose status is still new."""
    base.seed([EmulatedContact(email="old@example.com", email_status="new")])
    outcome = base.import_contacts(["email"], [["old@example.com"], ["fresh@example.com"]])
    assert (outcome.inserted, outcome.updated, outcome.new_emails) == (1, 1, 2)


def test_unknown_status_value_is_invalid_arg(base: ContactBase) -> None:
    """An email_status outside the importable set refuses the call."""
    with pytest.raises(ArgumentError, match="email_status"):
        base.import_contacts(["email", "email_status"], [["a@example.com", "blocked"]])


def test_phone_is_stored_with_plus_and_active(base: ContactBase) -> None:
    """Digits without '+' are accepted and stored with it; a new phone is active."""
    outcome = base.import_contacts(["phone"], [["79261232323"]])
    assert outcome.inserted == 1
    contact = only(base)
    assert (contact.phone, contact.phone_status, contact.email) == ("+79261232323", "active", None)


@pytest.mark.parametrize("phone", ["+12345", "phone", "+7926123232312345", "+7 926 123"])
def test_malformed_phone_is_logged(base: ContactBase, phone: str) -> None:
    """A phone that is not '+' and 7-15 digits is rejected row by row."""
    outcome = base.import_contacts(["email", "phone"], [["a@example.com", phone]])
    assert codes(outcome) == [(0, "e_phone_invalid")]
    assert (outcome.invalid, len(base)) == (1, 0)


def test_phone_held_by_another_contact_is_not_unique(base: ContactBase) -> None:
    """A phone owned by a different contact rejects the row and leaves both contacts alone."""
    base.seed([EmulatedContact(email="ann@example.com", phone="+79260000001")])
    outcome = base.import_contacts(
        ["email", "phone"],
        [["bob@example.com", "+79260000001"], ["ann@example.com", "+79260000001"]],
    )
    assert codes(outcome) == [(0, "e_phone_not_unique")]
    assert outcome.log[0].message == "Duplicate telephone number"
    assert (outcome.inserted, outcome.updated, outcome.invalid) == (0, 1, 1)
    assert base.find(email="bob@example.com") is None


def test_phone_repeated_in_one_call_is_not_unique(base: ContactBase) -> None:
    """The second row carrying the same phone in one call is rejected."""
    outcome = base.import_contacts(
        ["email", "phone"],
        [["ann@example.com", "+79260000001"], ["bob@example.com", "79260000001"]],
    )
    assert codes(outcome) == [(1, "e_phone_not_unique")]
    assert [c.email for c in base.contacts()] == ["ann@example.com"]


def test_row_without_email_matches_by_phone(base: ContactBase) -> None:
    """A phone-only row updates the contact holding that phone."""
    base.seed([EmulatedContact(email="ann@example.com", phone="+79260000001")])
    outcome = base.import_contacts(["phone", "tags"], [["+79260000001", "vip"]])
    assert outcome.updated == 1
    assert only(base).tags == {"vip"}


def test_changing_the_phone_frees_the_old_number(base: ContactBase) -> None:
    """After a contact's phone changes, its old number can be given to someone else."""
    base.seed([EmulatedContact(email="ann@example.com", phone="+79260000001")])
    base.import_contacts(["email", "phone"], [["ann@example.com", "+79260000002"]])
    outcome = base.import_contacts(["email", "phone"], [["bob@example.com", "+79260000001"]])
    assert outcome.inserted == 1
    assert base.find(phone="+79260000002") == base.find(email="ann@example.com")


@pytest.mark.parametrize(
    "email", ["not-an-email", "a@b", "a b@example.com", "trap@spamtrap.example.com", "@x.io"]
)
def test_invalid_or_rejected_email_is_logged_and_skipped(base: ContactBase, email: str) -> None:
    """Bad and provider-rejected addresses are logged as e_email_invalid; other rows apply."""
    outcome = base.import_contacts(["email"], [["ok@example.com"], [email]])
    assert codes(outcome) == [(1, "e_email_invalid")]
    assert outcome.log[0].message == "Invalid email format"
    assert (outcome.total, outcome.inserted, outcome.invalid) == (2, 1, 1)
    assert [c.email for c in base.contacts()] == ["ok@example.com"]


def test_rejected_domains_are_configurable() -> None:
    """The provider's own rejections are configurable, so a client's handling can be tested."""
    base = ContactBase(rejected_email_domains={"Blocked.Example"})
    outcome = base.import_contacts(["email"], [["x@blocked.example"], ["y@spamtrap.example.com"]])
    assert codes(outcome) == [(0, "e_email_invalid")]


def test_delete_by_email_and_by_phone(base: ContactBase) -> None:
    """delete=1 removes the matching contact (by email, else phone); unknown ones count nothing."""
    base.seed(
        [
            EmulatedContact(email="ann@example.com"),
            EmulatedContact(phone="+79260000001"),
            EmulatedContact(email="keep@example.com"),
        ]
    )
    outcome = base.import_contacts(
        ["email", "phone", "delete"],
        [
            ["ann@example.com", "", "1"],
            ["", "+79260000001", "1"],
            ["ghost@example.com", "", "1"],
            ["keep@example.com", "", "0"],
        ],
    )
    assert (outcome.deleted, outcome.updated, outcome.inserted) == (2, 1, 0)
    assert [c.email for c in base.contacts()] == ["keep@example.com"]
    assert base.find(phone="+79260000001") is None


def test_lists_are_added_without_overwrite(base: ContactBase) -> None:
    """overwrite_lists=0 adds the row's lists to the contact's."""
    base.seed([EmulatedContact(email="ann@example.com", email_list_ids={1})])
    base.import_contacts(["email", "email_list_ids"], [["ann@example.com", "2, 3"]])
    assert only(base).email_list_ids == {1, 2, 3}


def test_lists_are_replaced_with_overwrite(base: ContactBase) -> None:
    """overwrite_lists=1 replaces inclusions and exclusions with the row's."""
    base.seed(
        [EmulatedContact(email="ann@example.com", email_list_ids={1}, email_excluded_list_ids={3})]
    )
    base.import_contacts(
        ["email", "email_list_ids"], [["ann@example.com", "2"]], overwrite_lists=True
    )
    contact = only(base)
    assert (contact.email_list_ids, contact.email_excluded_list_ids) == ({2}, set())


def test_unsubscribed_list_is_never_resubscribed(base: ContactBase) -> None:
    """Adding a list the contact unsubscribed from leaves it unsubscribed there, even with
    overwrite_lists=1."""
    base.seed([EmulatedContact(email="ann@example.com", email_unsubscribed_list_ids={1})])
    for overwrite in (False, True):
        base.import_contacts(
            ["email", "email_list_ids"], [["ann@example.com", "1,2"]], overwrite_lists=overwrite
        )
        contact = only(base)
        assert contact.email_list_ids == {2}
        assert contact.email_unsubscribed_list_ids == {1}


def test_adding_a_list_lifts_its_exclusion(base: ContactBase) -> None:
    """A list named in email_list_ids leaves the excluded set."""
    base.seed([EmulatedContact(email="ann@example.com", email_excluded_list_ids={1, 2})])
    base.import_contacts(["email", "email_list_ids"], [["ann@example.com", "1"]])
    contact = only(base)
    assert (contact.email_list_ids, contact.email_excluded_list_ids) == ({1}, {2})


def test_excluded_list_ids_move_lists_out(base: ContactBase) -> None:
    """email_excluded_list_ids moves those lists from included to excluded."""
    base.seed([EmulatedContact(email="ann@example.com", email_list_ids={1, 2})])
    base.import_contacts(["email", "email_excluded_list_ids"], [["ann@example.com", "2"]])
    contact = only(base)
    assert (contact.email_list_ids, contact.email_excluded_list_ids) == ({1}, {2})


def test_unknown_list_id_refuses_the_whole_call(base: ContactBase) -> None:
    """A list id that does not exist is invalid_arg, and no earlier row was applied."""
    with pytest.raises(ArgumentError, match="99"):
        base.import_contacts(
            ["email", "email_list_ids"], [["ann@example.com", "1"], ["bob@example.com", "99"]]
        )
    assert len(base) == 0


def test_phone_lists(base: ContactBase) -> None:
    """phone_list_ids add, and phone_excluded_list_ids take lists away."""
    base.import_contacts(["phone", "phone_list_ids"], [["+79260000001", "1,2"]])
    base.import_contacts(["phone", "phone_excluded_list_ids"], [["+79260000001", "1"]])
    assert only(base).phone_list_ids == {2}


def test_tags_are_added_or_replaced(base: ContactBase) -> None:
    """Tags are trimmed; overwrite_tags=0 adds them, 1 replaces them."""
    base.import_contacts(["email", "tags"], [["ann@example.com", " a , b,, "]])
    assert only(base).tags == {"a", "b"}
    base.import_contacts(["email", "tags"], [["ann@example.com", "c"]])
    assert only(base).tags == {"a", "b", "c"}
    base.import_contacts(["email", "tags"], [["ann@example.com", "d"]], overwrite_tags=True)
    assert only(base).tags == {"d"}


def test_overlimit_rows_are_added_with_a_warning() -> None:
    """Past the tariff's contact limit rows are still added but logged w_common_overlimit."""
    base = ContactBase(contact_limit=2)
    outcome = base.import_contacts(
        ["email"], [["a@example.com"], ["b@example.com"], ["c@example.com"]]
    )
    assert outcome.inserted == 3
    assert codes(outcome) == [(2, "w_common_overlimit")]
    assert outcome.overlimit
    assert outcome.invalid == 0
    assert len(base) == 3


def test_at_most_500_rows_per_call(base: ContactBase) -> None:
    """500 rows are accepted; 501 refuse the whole call."""
    rows = [[f"u{i}@example.com"] for i in range(501)]
    with pytest.raises(ArgumentError, match="501"):
        base.import_contacts(["email"], rows)
    assert len(base) == 0
    assert base.import_contacts(["email"], rows[:500]).inserted == 500


@pytest.mark.parametrize(
    ("field_names", "match"),
    [
        (["Name"], "email' or 'phone"),
        (["email", "Nickname"], "Nickname"),
        (["email", "email"], "twice"),
    ],
)
def test_bad_field_names_refuse_the_call(
    base: ContactBase, field_names: list[str], match: str
) -> None:
    """field_names needs email or phone, known names only, each once."""
    with pytest.raises(ArgumentError, match=match):
        base.import_contacts(field_names, [["x"]])


def test_documented_system_columns_are_accepted(base: ContactBase) -> None:
    """System columns the emulator does not model (times, IPs) are accepted and ignored."""
    outcome = base.import_contacts(
        ["email", "email_add_time", "email_request_ip"],
        [["ann@example.com", "2024-01-01", "1.2.3.4"]],
    )
    assert outcome.inserted == 1


def test_row_longer_than_field_names_is_invalid(base: ContactBase) -> None:
    """A row with more cells than field_names refuses the call."""
    with pytest.raises(ArgumentError, match="more cells"):
        base.import_contacts(["email"], [["a@example.com", "extra"]])


def test_create_field_rules() -> None:
    """createField: Latin name starting with a letter, not a system name, unique, at most 50."""
    catalog = Catalog(max_user_fields=50)
    assert catalog.add_field("First_name-2", "text") == 1
    for bad in ("2name", "имя", "with space", "email", "Tags"):
        with pytest.raises(ArgumentError):
            catalog.add_field(bad)
    with pytest.raises(ArgumentError, match="already exists"):
        catalog.add_field("First_name-2")
    with pytest.raises(ArgumentError, match="type"):
        catalog.add_field("Other", "json")
    for i in range(49):
        catalog.add_field(f"f{i}")
    with pytest.raises(ArgumentError, match="50"):
        catalog.add_field("one_too_many")


def test_list_titles_must_be_unique() -> None:
    """createList refuses an empty or duplicate title."""
    catalog = Catalog()
    assert catalog.add_list("Main") == 1
    for bad in ("Main", "  "):
        with pytest.raises(ArgumentError):
            catalog.add_list(bad)


def test_seed_creates_lists_and_fields_and_keeps_keys_unique() -> None:
    """Seeding creates referenced lists and fields, normalises keys and refuses duplicates."""
    base = ContactBase()
    base.seed(
        [
            EmulatedContact(
                email=" A@X.io ", phone="7926000000", email_list_ids={7}, fields={"City": "Riga"}
            )
        ]
    )
    assert base.catalog.lists() == [(7, "List 7")]
    assert [f.name for f in base.catalog.fields()] == ["City"]
    assert base.find(email="a@x.io") is base.find(phone="+7926000000")
    with pytest.raises(ValueError, match="duplicate"):
        base.seed([EmulatedContact(email="a@x.io")])
    with pytest.raises(ValueError, match="email or a phone"):
        base.seed([EmulatedContact()])


def test_contacts_are_copies(base: ContactBase) -> None:
    """Mutating a returned contact does not change the base."""
    base.import_contacts(["email", "tags"], [["ann@example.com", "a"]])
    contact = only(base)
    contact.tags.add("mutated")
    contact.email = "other@example.com"
    assert only(base).tags == {"a"}
    assert base.find(email="ann@example.com") is not None


def test_export_membership_and_filters(base: ContactBase) -> None:
    """A list export holds members by email or phone, unsubscribed ones too, never excluded."""
    base.seed(
        [
            EmulatedContact(email="in@x.io", email_list_ids={1}, tags={"vip"}),
            EmulatedContact(email="unsub@x.io", email_unsubscribed_list_ids={1}),
            EmulatedContact(email="excl@x.io", email_excluded_list_ids={1}, phone_list_ids={1}),
            EmulatedContact(email="byphone@x.io", phone="+79260000001", phone_list_ids={1}),
            EmulatedContact(email="other@x.io", email_list_ids={2}, email_status="blocked"),
        ]
    )

    def emails(selection: ExportFilter) -> list[str]:
        return [row[0] for row in base.export_rows(["email"], selection)]

    assert emails(ExportFilter(list_id=1)) == ["in@x.io", "unsub@x.io", "byphone@x.io"]
    assert emails(ExportFilter(tag="vip")) == ["in@x.io"]
    assert emails(ExportFilter(email_status="blocked")) == ["other@x.io"]
    assert emails(ExportFilter(phone="+79260000001")) == ["byphone@x.io"]
    assert emails(ExportFilter(email="unsub@x.io")) == ["unsub@x.io"]
    assert len(emails(ExportFilter())) == 5


def test_export_columns_and_cells(base: ContactBase) -> None:
    """Default columns are the system fields then user fields; sets render sorted, comma-joined."""
    base.seed(
        [
            EmulatedContact(
                email="a@x.io",
                email_list_ids={3, 1},
                tags={"b", "a"},
                fields={"Name": "Ann"},
            ),
            EmulatedContact(phone="+79260000001"),
        ]
    )
    columns = base.export_columns([])
    assert columns == [
        "id",
        "email",
        "email_status",
        "email_list_ids",
        "email_unsubscribed_list_ids",
        "email_excluded_list_ids",
        "phone",
        "phone_status",
        "phone_list_ids",
        "tags",
        "Name",
    ]
    rows = list(base.export_rows(columns, ExportFilter()))
    assert rows[0] == ["1", "a@x.io", "active", "1,3", "", "", "", "", "", "a,b", "Ann"]
    assert rows[1] == ["2", "", "", "", "", "", "+79260000001", "active", "", "", ""]
    assert base.export_columns(["Name", "email"]) == ["Name", "email"]
    with pytest.raises(ArgumentError, match="Nope"):
        base.export_columns(["email", "Nope"])
