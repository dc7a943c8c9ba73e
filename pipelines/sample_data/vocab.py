"""Word lists the sample-data generator draws from. Weights are relative; order
matters: the generator draws indices, so reordering changes the data for a seed."""

from __future__ import annotations

import re
import unicodedata

# A mix of common US first names, with a few accented ones so files carry real UTF-8.
FIRST_NAMES: tuple[str, ...] = (
    "James", "Mary", "Michael", "Patricia", "Robert", "Jennifer", "John", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Karen", "Christopher", "Sarah",
    "Charles", "Lisa", "Daniel", "Nancy", "Matthew", "Sandra", "Anthony", "Betty", "Mark", "Ashley",
    "Donald", "Emily", "Steven", "Kimberly", "Andrew", "Margaret", "Paul", "Donna", "Joshua", "Michelle",
    "Kenneth", "Carol", "Kevin", "Amanda", "Brian", "Melissa", "Timothy", "Deborah", "Ronald", "Stephanie",
    "Jason", "Rebecca", "George", "Sharon", "Edward", "Laura", "Jeffrey", "Cynthia", "Ryan", "Dorothy",
    "Jacob", "Amy", "Nicholas", "Kathleen", "Gary", "Angela", "Eric", "Shirley", "Jonathan", "Emma",
    "Stephen", "Brenda", "Larry", "Pamela", "Justin", "Nicole", "Scott", "Anna", "Brandon", "Samantha",
    "Benjamin", "Katherine", "Samuel", "Christine", "Gregory", "Debra", "Alexander", "Rachel", "Patrick",
    "Carolyn", "Frank", "Janet", "Raymond", "Maria", "Jack", "Olivia", "Dennis", "Heather", "Jerry", "Helen",
    "Wei", "Priya", "Mohammed", "Aisha", "Hiroshi", "Mei", "Carlos", "Sofia", "Luis", "Camila",
    "José", "Zoë", "Chloé", "Renée", "André", "Noël",
)

LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes",
    "Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper",
    "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson",
    "Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes",
    "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez",
    "O'Brien", "O'Connor", "Smith-Jones", "McDonald", "Chen", "Wang", "Singh", "Müller", "Núñez", "Kowalski",
)

# (city, state, first ZIP of a plausible range, number of ZIPs in it, weight). New York State
# is ~12% of subscribers; New England / New Jersey ZIPs exercise leading-zero postal codes.
CITIES: tuple[tuple[str, str, int, int, float], ...] = (
    ("New York", "NY", 10001, 40, 8.5),    ("Brooklyn", "NY", 11201, 39, 1.6),
    ("Buffalo", "NY", 14201, 27, 0.5),     ("Rochester", "NY", 14604, 23, 0.4),
    ("Los Angeles", "CA", 90001, 89, 6.0), ("San Francisco", "CA", 94102, 33, 3.0),
    ("San Diego", "CA", 92101, 30, 2.0),   ("San Jose", "CA", 95110, 30, 1.5),
    ("Sacramento", "CA", 95814, 25, 1.0),  ("Chicago", "IL", 60601, 60, 5.0),
    ("Houston", "TX", 77002, 80, 4.0),     ("Dallas", "TX", 75201, 50, 3.0),
    ("Austin", "TX", 78701, 50, 2.5),      ("San Antonio", "TX", 78205, 50, 2.0),
    ("Phoenix", "AZ", 85003, 50, 3.0),     ("Philadelphia", "PA", 19102, 50, 3.0),
    ("Pittsburgh", "PA", 15222, 20, 1.2),  ("Boston", "MA", 2108, 30, 3.0),
    ("Cambridge", "MA", 2138, 5, 1.0),     ("Providence", "RI", 2903, 8, 0.6),
    ("Hartford", "CT", 6103, 12, 0.6),     ("Newark", "NJ", 7102, 12, 1.0),
    ("Jersey City", "NJ", 7302, 9, 1.0),   ("Portland", "ME", 4101, 3, 0.3),
    ("Burlington", "VT", 5401, 8, 0.2),    ("Seattle", "WA", 98101, 99, 3.0),
    ("Portland", "OR", 97201, 30, 1.5),    ("Denver", "CO", 80202, 50, 2.5),
    ("Atlanta", "GA", 30303, 50, 2.5),     ("Miami", "FL", 33125, 50, 2.5),
    ("Orlando", "FL", 32801, 30, 1.5),     ("Tampa", "FL", 33602, 30, 1.2),
    ("Washington", "DC", 20001, 36, 2.0),  ("Baltimore", "MD", 21201, 30, 1.2),
    ("Charlotte", "NC", 28202, 50, 1.5),   ("Raleigh", "NC", 27601, 20, 1.0),
    ("Nashville", "TN", 37203, 20, 1.5),   ("Detroit", "MI", 48201, 30, 1.5),
    ("Minneapolis", "MN", 55401, 30, 1.5), ("Columbus", "OH", 43215, 20, 1.2),
    ("Cleveland", "OH", 44113, 20, 1.0),   ("Indianapolis", "IN", 46204, 20, 1.0),
    ("Kansas City", "MO", 64105, 20, 1.0), ("St. Louis", "MO", 63101, 20, 1.0),
    ("New Orleans", "LA", 70112, 20, 0.8), ("Salt Lake City", "UT", 84101, 20, 0.8),
    ("Las Vegas", "NV", 89101, 50, 1.2),
)

# (form, weight). "NYC meetup form" is mostly used by New York subscribers (see generate.py).
SIGNUP_FORMS: tuple[tuple[str, float], ...] = (
    ("Homepage", 34.0), ("Checkout", 20.0), ("Blog footer", 14.0), ("Webinar registration", 12.0),
    ("Pop-up", 10.0), ("Referral", 8.0), ("NYC meetup form", 0.5),
)

# (canonical tag, the casing some imports use instead, base probability of having it).
TAGS: tuple[tuple[str, str, float], ...] = (
    ("newsletter", "Newsletter", 0.45), ("product-updates", "Product-Updates", 0.18),
    ("webinar-attendee", "Webinar-Attendee", 0.08), ("webinar-2026", "Webinar-2026", 0.04),
    ("new-customer", "New-Customer", 0.02), ("vip", "VIP", 0.03), ("beta", "Beta", 0.05),
    ("black-friday-2025", "Black-Friday-2025", 0.1), ("churn-risk", "Churn-Risk", 0.04),
)

# Reserved example domains (RFC 2606): sample addresses can never reach a real inbox.
EMAIL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("example.com", 6.0), ("example.net", 2.0), ("example.org", 1.0), ("mail.example.com", 1.0),
)

STATUS_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("active", 0.88), ("unsubscribed", 0.08), ("bounced", 0.03), ("complained", 0.01),
)

# (event, share of the regular events).
EVENT_TYPES: tuple[tuple[str, float], ...] = (
    ("email_open", 0.46), ("email_click", 0.12), ("page_view", 0.24), ("purchase", 0.14),
    ("webinar_registered", 0.04),
)

# (product, weight, median price). Two names need CSV quoting on purpose.
PRODUCTS: tuple[tuple[str, float, float], ...] = (
    ("Starter Kit", 8.0, 29.0), ("Pro Plan", 5.0, 79.0), ("Gift Card", 4.0, 50.0),
    ("Coffee Beans, 1 kg", 7.0, 24.0), ('Tote Bag "Classic"', 3.0, 18.0), ("Travel Mug", 4.0, 22.0),
    ("Annual Membership", 1.5, 149.0), ("Workshop Ticket", 2.0, 45.0), ("E-book", 3.0, 12.0),
    ("Gift Box", 2.0, 65.0),
)

# Email campaigns are named by kind and month: "newsletter-2026-03".
CAMPAIGN_KINDS: tuple[tuple[str, float], ...] = (
    ("newsletter", 5.0), ("promo", 3.0), ("product-update", 1.5), ("win-back", 0.5),
)

COUPONS: tuple[tuple[str, float], ...] = (
    ("WELCOME10", 4.0), ("SPRING15", 2.0), ("BF2025", 2.0), ("FREESHIP", 3.0), ("VIP20", 1.0),
)


def email_slug(name: str) -> str:
    """ASCII local-part piece of a name: 'Zoë' -> 'zoe', "O'Brien" -> 'obrien'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", ascii_name.lower())
