"""Write ``mlx_distill/demo/data/unlabeled.txt``: unlabelled to-do notes for the demo's transfer set.

Why a generator: the demo needs ~2,000 unlabelled notes of the same four kinds as its labelled
notes (work / shopping / health / travel) for the teacher to label softly during distillation, and
the file must be reproducible and reviewable. The notes come from a small recursive grammar
(hand-written phrase lists, ~40 frames per kind, plus hand-written one-off notes), then a seeded
"how people type" pass (lower case, shorthand, the odd typo, a trailing "!!"). About 8 % mix two
kinds ("sunscreen before the Crete trip", "pick up my prescription on the way to the office"), as
real notes do. No note equals (case/whitespace-normalised) a labelled demo note; the script
asserts it.

    python scripts/make_demo_unlabeled.py [--count 2000] [--seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "mlx_distill" / "demo" / "data"

# ---------------------------------------------------------------- shared slots
SHARED: dict[str, list[str]] = {
    "name": ["Priya", "Tom", "Aisha", "Marco", "Sam", "Jen", "Dave", "Olu", "Mei", "Lars", "Fatima", "Raj",
             "Chloe", "Ben", "Nadia", "Kofi", "Hannah", "Luis", "Ingrid", "Yusuf", "Grace", "Tariq", "Elena",
             "Owen", "Zara", "Pete", "Sofia", "Dan", "Ruth", "Jamal", "Claire", "Kenji"],
    "kid": ["Maya", "Leo", "Ella", "Noah", "Isla", "Alfie", "Ruby", "Theo", "the twins", "the kids", "Jack"],
    "relative": ["Mum", "Dad", "Gran", "Grandad", "my sister", "my brother", "Auntie Jo", "my partner"],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "Mon", "Tue", "Wed",
            "Thu", "Fri", "Sat", "tomorrow"],
    "time": ["9am", "9:30", "10:15", "11am", "12:30", "2pm", "3:45pm", "4pm", "16:00", "17:30", "8:15am", "noon",
             "half 10", "1pm", "6pm", "7:45"],
    "month": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December", "Jan", "Feb", "Sept", "Oct", "Nov"],
    "when": ["today", "tomorrow", "tmrw", "by Friday", "before lunch", "on Monday", "this afternoon", "next week",
             "by end of day", "by EOD", "tonight", "at the weekend", "first thing Monday", "before the 15th",
             "on Thursday", "this week", "asap", "before I forget", "by Wednesday", "after the school run"],
    "pre": ["", "", "", "", "", "", "remember to ", "don't forget to ", "need to ", "must ", "todo: ",
            "try to ", "have to ", "gotta ", "pls ", "note to self: "],
    "place": ["Lisbon", "Porto", "Barcelona", "Rome", "Berlin", "Kyoto", "Reykjavik", "the Lake District",
              "Cornwall", "Edinburgh", "Amsterdam", "Crete", "New York", "Marrakech", "Vienna", "Copenhagen",
              "Dubrovnik", "Bali", "Mexico City", "Prague", "Seville", "Budapest", "the Dolomites", "Skye",
              "Madrid", "Naples", "Krakow", "Oslo", "Sicily", "Tokyo", "Montreal", "Cape Town", "Galway",
              "Lyon", "Bordeaux", "Ljubljana", "Athens", "Split", "Bruges", "Singapore"],
}

# ---------------------------------------------------------------- work
WORK: dict[str, list[str]] = {
    "frame": [
        "{pre}{wverb} {doc} {when}", "{pre}{wverb} {doc}", "{pre}{wverb} {doc} for {name}",
        "{pre}email {name} about {topic}", "{pre}reply to {name}'s email about {topic}",
        "{pre}ask {team} about {topic}", "{meeting} {day} at {time}", "{meeting} moved to {day} {time}",
        "{pre}prep for {meeting}", "{pre}book a room for {meeting}", "{doc} due {when}",
        "{pre}chase {client} for {chase}", "{pre}set up a call with {name} to {goal}",
        "deadline for {doc} is {day}, {urgency}", "{pre}submit {admin}", "{pre}fix {bug}",
        "{pre}deploy {release} {when}", "{pre}review {name}'s pull request {when}", "code review for {name}: {pr}",
        "interview {candidate} at {time} for the {role} role", "{pre}write up the minutes from {meeting}",
        "performance review for {name} — {perf}", "{pre}onboard the new {role}: {onboarding}",
        "{pre}update {tool} after {meeting}", "{pre}present {doc} to {audience} {when}",
        "out of office from {day}, set the auto-reply", "{pre}invoice {client} for {month}",
        "{name} needs {doc} before {day}, so {wverb} it tonight and send it over",
        "did anyone {qwork}?", "who's covering {cover} on {day}?", "{pre}sign the {contract} and send it back to {client}",
        "{pre}block out focus time {when} for {doc}", "{client} want {clientwant}, {sigh}",
        "{pre}ask {name} to {delegate}", "{pre}schedule {meeting} with {team}",
        "{pre}get {approval} signed off by {boss}", "{pre}prepare {talk} for {event}",
        "follow up with {client} on {topic}", "{pre}clear my inbox before {meeting}",
        "{pre}renew {cert}", "{pre}send the agenda for {meeting}", "{pre}share {doc} with {team} {when}",
        "{meeting} — {meetnote}", "{pre}rehearse {talk} with {name}", "{pre}log my hours in {tool}",
        "{pre}book annual leave for {month} before the rota fills up",
        "{pre}draft the job ad for {role}", "{pre}migrate {system} to {newsystem}",
        "{pre}close the ticket about {bug} once it's verified",
    ],
    "wverb": ["finish", "review", "proofread", "send out", "update", "sign off on", "draft", "rewrite", "comment on",
              "circulate", "print", "polish", "tidy up", "start", "get feedback on", "fact-check", "format"],
    "doc": ["the Q3 report", "the quarterly forecast", "the slide deck", "the grant proposal", "the onboarding doc",
            "the release notes", "the statement of work", "the board pack", "the budget spreadsheet",
            "the job description", "the incident postmortem", "the product roadmap", "the risk register",
            "the press release", "the pitch deck", "the project plan", "the vendor comparison",
            "the handover notes", "the training manual", "the customer survey results", "the sales figures",
            "the tender response", "the funding bid", "the API docs", "the user research summary",
            "the case study for {client}", "the proposal for {client}", "the monthly newsletter"],
    "topic": ["the budget", "the timeline", "the new pricing", "the delayed shipment", "next year's targets",
              "the contract renewal", "the hiring plan", "the office move", "the Q4 launch", "the missing invoice",
              "the design changes", "the server costs", "the holiday rota", "the rebrand", "the data migration",
              "the security audit", "the new expenses policy", "the workshop dates", "their feedback"],
    "team": ["finance", "legal", "marketing", "the design team", "HR", "procurement", "IT", "ops", "the Berlin office",
             "the sales team", "the data team", "facilities", "payroll", "the comms team", "support"],
    "meeting": ["1:1 with {name}", "the standup", "the sprint retro", "sprint planning", "the all-hands",
                "the client call with {client}", "the board meeting", "the budget review", "the interview panel",
                "the design crit", "the kickoff with {client}", "the quarterly business review",
                "the leadership offsite", "the team lunch", "the vendor demo", "the town hall",
                "the steering committee", "the project sync"],
    "client": ["Acme", "the Henderson account", "Northwind", "Globex", "the council", "the new client",
               "the Danish client", "Brightwell", "the agency", "our biggest customer", "the supplier", "Fenwick & Co"],
    "chase": ["the unpaid invoice", "the signed contract", "their feedback", "the purchase order",
              "the missing assets", "sign-off on the designs"],
    "goal": ["agree the scope", "align on Q3 targets", "walk through the numbers", "go over the floor plan",
             "talk about the renewal", "plan the handover", "sort out the access issues"],
    "urgency": ["no extensions this time", "start tonight", "block out Thursday", "ask for help if needed",
                "it's non-negotiable", "don't leave it to the last minute"],
    "admin": ["my timesheet", "the expense claim for the client dinner", "my holiday request for {month}",
              "my self-assessment for the review cycle", "mileage for last month", "the purchase order for new monitors",
              "the travel expenses from the conference", "the training budget request"],
    "bug": ["the login bug", "the broken build on main", "the flaky test in CI", "the dashboard showing last week's numbers",
            "the typo on the pricing page", "the memory leak in the worker", "the timeout on the export endpoint",
            "the broken link in the footer", "the date bug in the invoice generator", "the checkout crash on Android"],
    "release": ["v2.3", "the hotfix", "the new search page", "the billing changes", "the mobile release",
                "the migration script"],
    "pr": ["mostly naming, check the tests", "needs a rebase first", "big one, set aside an hour",
           "look at the error handling", "second pass after her changes"],
    "candidate": ["the first candidate", "Alex", "the internal applicant", "two candidates", "the final candidate"],
    "role": ["data analyst", "junior developer", "office manager", "product designer", "account manager",
             "QA engineer", "marketing lead", "intern", "support engineer"],
    "perf": ["gather peer feedback first", "bring the goals from last year", "write it up by Friday",
             "talk about the promotion case"],
    "onboarding": ["laptop, accounts and a buddy", "access to the shared drive", "book their intro meetings",
                   "order a desk and a headset"],
    "tool": ["Jira", "Asana", "the CRM", "Confluence", "the project board", "Salesforce", "the tracker", "Trello"],
    "audience": ["the board", "the client", "the leadership team", "the whole department", "the investors",
                 "the new starters"],
    "qwork": ["book the big meeting room for {day}", "send the minutes from {meeting}",
              "hear back from {client}", "order the new badges", "reply to {name}"],
    "cover": ["the support inbox", "the front desk", "the on-call shift", "reception", "the late shift"],
    "contract": ["NDA", "renewal contract", "supplier agreement", "freelance contract", "licence agreement"],
    "clientwant": ["the logo bigger again", "another round of revisions", "the launch moved up a week",
                   "a discount on the renewal", "weekly status calls now"],
    "sigh": ["sigh", "fine", "talk to {name} first", "push back a little", "revised mockups by noon"],
    "delegate": ["cover my calls on {day}", "proofread {doc}", "take notes at {meeting}",
                 "pull the numbers for {doc}", "chase {client}"],
    "approval": ["the budget", "the new hire", "the conference spend", "the software licence", "the overtime"],
    "boss": ["my manager", "the director", "{name}", "finance", "the CFO"],
    "talk": ["the investor pitch", "the demo", "my lightning talk", "the training session", "the quarterly update"],
    "event": ["the conference", "the all-hands", "Thursday's workshop", "the partner summit", "the team away day"],
    "cert": ["my PMP certification", "the software licences", "the first-aid at work certificate",
             "the domain name", "the SSL certificate"],
    "meetnote": ["bring the numbers", "I'm presenting, no pressure", "dial in from home",
                 "ask about the headcount", "keep it under 30 mins", "send the deck beforehand"],
    "system": ["the mailing list", "the old wiki", "our CI", "the customer database", "the shared drive"],
    "newsystem": ["the new platform", "Notion", "GitHub Actions", "the cloud", "SharePoint"],
}
WORK_ONEOFF = [
    "Ask for a raise before the review cycle closes", "Update my LinkedIn before applying anywhere",
    "Quarterly taxes for the freelance work are due", "Find a co-working space for the Tuesday team days",
    "Thank-you email to everyone who helped with the launch", "Clean up the shared drive, it's chaos",
    "Reschedule the 3pm, it clashes with the dentist", "Print name badges for the workshop",
    "Figure out why the sales numbers don't match the CRM", "Ask IT why my VPN keeps dropping",
    "Prepare questions for the skip-level meeting", "Nominate Jamal for the team award",
    "Write a short update for the stakeholders", "Check the contract for the notice period",
    "Retro action items from last sprint still open", "Hand over the Fenwick account before I go on leave",
    "Budget sign-off meeting got cancelled, rebook", "Book the caterer for the client workshop",
    "Go through the 40 unread Slack threads", "Respond to the recruiter from the fintech startup",
    "The printer on the 3rd floor is jammed again, log a ticket", "New starter on Monday, is her laptop ready?",
    "Send the signed timesheet to the agency", "Backlog grooming before Thursday",
    "Ask legal whether we can use the photos from the event", "Finalise the speaker list for the webinar",
    "quarter-end close: reconcile the accounts", "Write the reference letter for Owen",
    "Check whether the pitch deck numbers are up to date", "Team survey results — share the summary on Friday",
]

# ---------------------------------------------------------------- shopping
SHOPPING: dict[str, list[str]] = {
    "frame": [
        "{pre}{buy} {g} and {g}", "{pre}{buy} {g}, {g} and {g}", "{g}, {g}, {g}", "{g}, {g}, {g}, {g}",
        "{pre}{buy} {item} from {itemshop}", "{item} on offer at {itemshop}, {buy} two", "out of {g} again",
        "{pre}return {clothes} to {clothesshop}, {retreason}", "{pre}compare prices for {big}",
        "wishlist: {big} when it drops under {price}", "gift for {name}'s {occasion}: {gift}?",
        "{pre}order {item} online before {day}", "grocery list: {g}, {g}, {g}", "{pre}pick up {g} on the way home",
        "does {clothesshop} still have {clothes} in {size}?", "{pre}get {qty} {countable}",
        "ingredients for {dishlist}", "{pre}{buy} what we need for {dish}: {g}, {g} and {g}", "click and collect from {shop} — ready after {time}",
        "need {clothes} in size {size}", "{pre}{buy} {kiditem} for {kid}", "{kid} needs {kiditem}", "{big}: {bigcriteria}",
        "{pre}{buy} a present for {name}'s {occasion}", "{house} and {house}", "{pre}{buy} {house} and {g}",
        "we're low on {house}", "{pre}{buy} {petfood} for the {pet}", "{mealthing} for {meal}",
        "{pre}find {furniture} that fits {space}", "{shop} run: {g}, {house}, {g}",
        "{pre}{buy} {garden} for the garden", "the {brokeitem} broke, {pre}order a new one", "{brokeitem} has died, {buy} a new one",
        "{pre}check if {itemshop} price-matches the {bigname}", "Black Friday list: {big}, {item}",
        "{pre}{buy} a bottle of {drink} to bring to {name}'s", "{pre}sell the old {bigname} on Marketplace before buying a new one",
        "{pre}{buy} {kiditem} before school starts", "{pre}use the {voucher} before it expires",
        "{item} or {item}? pick one", "{pre}order more {consumable}", "weekly shop: {g}, {g}, {house}, {g}",
    ],
    "buy": ["buy", "get", "grab", "pick up", "order", "stock up on"],
    "g": ["oat milk", "eggs", "a loaf of bread", "bananas", "coffee beans", "olive oil", "rice", "pasta",
          "tinned tomatoes", "cheddar", "Greek yoghurt", "butter", "onions", "garlic", "fresh basil", "lemons",
          "avocados", "chicken thighs", "tofu", "cereal", "tea bags", "frozen peas", "sparkling water", "oats",
          "peanut butter", "hummus", "carrots", "spinach", "apples", "mince", "salmon fillets", "tortilla wraps",
          "soy sauce", "chickpeas", "honey", "strawberries", "feta", "crisps for the party", "ice cream", "milk",
          "orange juice", "mushrooms", "red peppers", "ginger", "flour", "sugar", "bagels", "cream cheese",
          "coconut milk", "potatoes", "ham for sandwiches", "dark chocolate"],
    "house": ["bin bags", "washing-up liquid", "loo roll", "kitchen roll", "dishwasher tablets", "light bulbs",
              "AA batteries", "laundry detergent", "sponges", "cling film", "tin foil", "a new mop head",
              "bleach", "hand soap", "fabric softener", "a lint roller", "descaler for the kettle", "matches",
              "freezer bags", "a shower curtain", "toothpaste", "shampoo"],
    "item": ["a phone charger", "an HDMI cable", "printer ink", "a desk lamp", "a new duvet", "curtains",
             "plant pots", "a kettle", "a toaster", "wireless earbuds", "a rain jacket", "walking socks",
             "a hoodie", "a bike lock", "an extension lead", "a doormat", "picture frames", "a water bottle",
             "a laptop stand", "a baking tray", "a frying pan", "a wall clock", "a bath mat", "USB-C cables",
             "a smoke alarm", "a hot water bottle", "a phone case", "an umbrella"],
    "clothes": ["the jeans", "the blue jumper", "the trainers", "the dress", "the winter coat", "the boots",
                "the shirt I got for the wedding", "the jacket"],
    "retreason": ["wrong size", "it doesn't fit", "receipt's in the drawer", "still within 30 days",
                  "the zip is broken", "colour looks different in person"],
    "shop": ["Tesco", "Lidl", "Aldi", "the market", "the corner shop", "IKEA", "Boots", "Argos", "Amazon",
             "the farmers' market", "the hardware store", "Costco", "M&S", "Sainsbury's", "the bakery",
             "the butcher", "Decathlon", "John Lewis", "the garden centre", "Waitrose", "the Co-op", "Primark"],
    "big": ["a new {bigname}", "a decent {bigname}", "a second-hand {bigname}", "a cheap {bigname}", "a new {bigname}"],
    "bigname": ["fridge", "washing machine", "sofa", "laptop", "bike", "mattress", "TV", "dishwasher",
                "cordless vacuum", "air fryer", "coffee machine", "standing fan", "tumble dryer", "phone",
                "microwave", "office chair"],
    "itemshop": ["IKEA", "Argos", "Amazon", "the hardware store", "John Lewis", "Decathlon", "Currys", "eBay",
                 "the big Tesco", "Wilko", "the department store"],
    "dishlist": ["pancakes: flour, eggs, milk, lemons", "lasagne: mince, tinned tomatoes, pasta sheets, mozzarella",
                 "Friday's curry: chickpeas, coconut milk, spinach, naan", "tacos: tortillas, limes, avocados, black beans",
                 "the Sunday roast: a chicken, potatoes, carrots, gravy granules", "banana bread: bananas, walnuts, brown sugar",
                 "shepherd's pie: lamb mince, potatoes, peas", "the stir fry: noodles, pak choi, ginger, soy sauce",
                 "chilli: kidney beans, mince, peppers, sour cream", "the birthday cake: icing sugar, butter, candles",
                 "risotto: arborio rice, parmesan, mushrooms, stock cubes", "pesto pasta: basil, pine nuts, parmesan"],
    "dish": ["dinner on Saturday", "the week's packed lunches", "the kids' tea", "date night", "the bake sale"],
    "clothesshop": ["Primark", "M&S", "Zara", "H&M", "John Lewis", "Next", "Uniqlo", "the shop on the high street",
                    "ASOS", "the outlet village"],
    "mealthing": ["burgers and buns", "sausages and charcoal", "snacks and drinks", "something veggie",
                  "a cheese board", "paper plates and napkins", "ice and lemons", "a big bag of crisps"],
    "bigcriteria": ["under £400, ideally energy rating A", "read the reviews first", "check delivery and old-unit removal",
                    "must fit a 60cm gap", "wait for the January sales", "ask {name} which one they have"],
    "price": ["£200", "£150", "£80", "£500", "£50", "100 quid"],
    "name": SHARED["name"] + SHARED["relative"],
    "occasion": ["birthday", "leaving do", "housewarming", "wedding", "retirement", "christening", "30th",
                 "anniversary", "graduation"],
    "gift": ["a nice candle", "that cookbook", "a plant", "concert tickets", "a voucher", "a photo book",
             "a good bottle of gin", "board game", "a scarf"],
    "size": ["small", "a medium", "a large", "a 10", "a 12", "size 8", "XL", "a 38"],
    "qty": ["a dozen", "two", "six", "a bag of", "a pack of", "three", "a box of"],
    "countable": ["eggs", "bagels", "limes", "candles", "AA batteries", "tins of chickpeas", "croissants",
                  "greetings cards", "coat hangers"],
    "dish": ["lasagne", "Friday's curry", "the Sunday roast", "pancakes", "tacos", "the birthday cake",
             "banana bread", "shepherd's pie", "a stir fry", "chilli"],
    "kiditem": ["school shoes", "a lunchbox", "a winter coat", "PE kit", "a pencil case", "wellies",
                "a school bag", "swimming goggles", "new trainers", "a bigger bike helmet", "football boots"],
    "brokeitem": ["kettle", "toaster", "desk lamp", "phone charger", "bike lock", "umbrella", "frying pan",
                  "wall clock", "hairdryer", "shower head", "iron"],
    "kid": SHARED["kid"],
    "petfood": ["dog food", "cat litter", "dental sticks", "fish flakes", "a new lead", "the big bag of kibble"],
    "pet": ["dog", "cat", "puppy", "kitten", "rabbit"],
    "meal": ["the barbecue", "Saturday's dinner party", "the picnic", "packed lunches", "movie night",
             "breakfast this week"],
    "furniture": ["a bookshelf", "a bedside table", "a shoe rack", "a small desk", "a wardrobe", "bar stools"],
    "space": ["the alcove", "the hallway", "under the stairs", "the spare room", "the corner by the window"],
    "garden": ["compost", "seeds", "a hose", "bird food", "slug pellets", "tulip bulbs", "fairy lights"],
    "drink": ["red", "prosecco", "white wine", "something fizzy", "good gin", "elderflower cordial"],
    "voucher": ["gift card", "£10 off voucher", "Boots points", "Amazon credit", "store credit"],
    "consumable": ["coffee pods", "printer paper", "contact lens solution", "bin bags", "water filters",
                   "razor blades", "dishwasher salt"],
}
SHOPPING_ONEOFF = [
    "Cancel the meal kit subscription before the next box ships", "Sign up for the Lidl app for the coupons",
    "The toaster only browns one side, time for a new one", "Bulk buy toilet roll while it's on offer",
    "Find replacement parts for the blender", "Book the big shop delivery slot for Thursday evening",
    "Party bags for Leo's birthday, ten of them", "Need a new charger cable, the old one is frayed",
    "Look for a second-hand piano for the kids", "Order the sofa cover in grey, not beige",
    "Anything for the food bank collection this week", "Replacement filter for the cooker hood",
    "Check if the sale is online only", "Price the paint for the bedroom, two tins of white",
    "Ask the hardware shop for wall plugs that hold 10kg", "Mother's Day flowers, order by Thursday",
    "The duvet cover in the photo was a double, we need a king", "Refund for the broken mug never came",
    "Grab a birthday card and a gift bag", "Halloween costume for Ruby, witch or cat",
    "Compare the two air fryers Dan mentioned", "Spare keys cut at the key shop",
    "Stamps and padded envelopes", "Christmas crackers before they sell out", "Get the bike tyres replaced",
    "Wrapping paper, sticky tape, gift tags", "Pick a new rug for the living room, something washable",
    "Bread maker on sale at Argos?", "A new lampshade for the hallway", "Freezer is empty, plan a big shop",
]

# ---------------------------------------------------------------- health
HEALTH: dict[str, list[str]] = {
    "frame": [
        "{pre}book a {appt} appointment {when}", "{appt} appointment {day} at {time}", "{appt} appt moved to {day} {time}",
        "{pre}refill {med}", "{pre}take {supp} {freq}", "{exercise} {when}", "{exercise} {day} at {time}",
        "{pre}go to bed before {bedtime}", "{pre}log my {metric} {logwhen}", "been having {symptom} for {duration}, {gp}", "{symptom} since {day}, {gp}",
        "{pre}get {check} checked", "results from the {test} should be back {when}, {results}",
        "{pre}cut down on {vice}", "meal prep {healthy} for the week", "{relative}'s {appt} appointment {day}, {drive}",
        "physio exercises for my {body}, {reps}", "therapy session {day} — {therapy}", "{pre}{habit}",
        "day {n} without {vice2}", "{pre}ask the pharmacist about {pharm}", "{kid}'s {jab} {when}",
        "{pre}sign up for {event}", "{pre}call the surgery about {surgery}", "{exercise} — {exnote}",
        "{pre}stretch {stretchwhen}, my {body} is stiff", "{pre}ring 111 if {symptom2} gets worse",
        "{pre}fill in the health questionnaire before the {appt} appointment on {day}", "{pre}pick up {med} from the pharmacy",
        "{appt} at {time}, {apptnote}", "{pre}rest my {body} until {until}", "{pre}book {kid} in for {kidappt}",
        "{pre}stick to {plan} this week", "{symptom2} again, keep a diary of when it happens",
        "{pre}move the {appt} appointment, it clashes with {clash}", "{pre}walk at lunch, {walknote}",
        "{pre}track {metric} for {relative}", "{pre}drink {drink}", "{pre}eat {food} {foodwhen}",
        "sleep: {sleepnote}", "{pre}book a {check2}",
    ],
    "appt": ["dentist", "GP", "physio", "optician", "dermatologist", "blood test", "flu jab", "counsellor",
             "therapist", "hearing test", "podiatrist", "hygienist", "asthma review", "smear test",
             "allergy clinic", "cardiology", "sports massage", "osteopath"],
    "med": ["my inhaler prescription", "the blood pressure tablets", "Mum's statins", "the antihistamines",
            "my repeat prescription", "the eczema cream", "the thyroid meds", "the migraine tablets",
            "Dad's insulin", "the eye drops"],
    "supp": ["vitamin D", "iron tablets", "the antibiotics", "magnesium", "omega-3", "the probiotics", "folic acid",
             "the painkillers", "the anti-inflammatories"],
    "freq": ["every morning", "with food", "twice a day", "until Friday", "at bedtime", "for seven days",
             "after breakfast", "before the run"],
    "exercise": ["5k run", "yoga class", "swim 20 lengths", "spin class", "leg day at the gym", "a long walk",
                 "pilates", "climbing session", "HIIT class", "parkrun", "bike ride", "strength training",
                 "aqua aerobics", "10 minutes of meditation", "boxing class", "rowing machine, 20 minutes"],
    "exnote": ["bring my own mat", "book a slot online", "don't skip the warm-up", "go easy on the knee",
               "with {name}", "pack the gym bag tonight", "wear the heart rate monitor"],
    "bedtime": ["11", "10:30", "midnight", "10pm"],
    "metric": ["blood pressure", "blood sugar", "weight", "steps", "sleep", "water intake", "migraine triggers",
               "resting heart rate", "mood", "peak flow"],
    "logwhen": ["tonight", "every morning", "after dinner", "this week", "before bed", ""],
    "symptom": ["a cough", "a rash on my arm", "headaches", "knee pain", "lower back pain",
                "ringing in my ears", "heartburn", "dizzy spells", "a sore throat", "a clicking wrist",
                "itchy eyes", "a tickly chest", "stomach cramps", "trouble sleeping", "numb fingers"],
    "symptom2": ["the chest pain", "the fever", "the swelling", "the dizziness", "the rash"],
    "duration": ["two weeks", "a week now", "ages", "ten days", "a month", "three days"],
    "gp": ["ask the GP", "book the doctor", "get it looked at", "ring the surgery", "mention it at the checkup",
           "see if the pharmacist can help"],
    "check": ["the mole on my shoulder", "my eyes", "my hearing", "my cholesterol", "my iron levels",
              "the lump on my wrist", "my teeth", "my thyroid", "my blood pressure"],
    "check2": ["health MOT", "full blood count", "eye test", "skin check", "dental checkup", "sports injury assessment"],
    "test": ["blood test", "scan", "allergy test", "ECG", "X-ray", "biopsy", "urine test"],
    "results": ["call the surgery", "check the NHS app", "chase them if not", "ask about next steps"],
    "vice": ["coffee", "sugar", "alcohol", "takeaways", "salt", "energy drinks", "late-night snacking", "screen time"],
    "vice2": ["smoking", "vaping", "sugar", "alcohol", "caffeine", "crisps"],
    "healthy": ["lentil soup", "chicken and veg", "overnight oats", "salads", "a big batch of chilli", "quinoa bowls"],
    "relative": SHARED["relative"],
    "drive": ["I'm driving", "bring her medication list", "ask about the side effects", "take the day off",
              "write down questions first"],
    "body": ["knee", "shoulder", "back", "ankle", "neck", "hip", "wrist", "hamstring"],
    "reps": ["3 sets of 10", "every evening", "twice a day", "don't skip them", "10 minutes each morning"],
    "therapy": ["write down what to talk about", "bring the journal", "leave work early", "it's online this time"],
    "habit": ["drink more water", "walk 10,000 steps today", "no screens after 10pm", "eat five portions of veg",
              "take the stairs", "stand up every hour", "floss every night", "wear sunscreen daily",
              "do the breathing exercises", "skip the second coffee", "wear the ankle brace for football",
              "book a proper lunch break"],
    "n": ["3", "5", "12", "20", "30", "45", "100"],
    "pharm": ["the new allergy tablets", "hay fever options", "a cough that won't go", "travel sickness for {kid}",
              "whether I can take ibuprofen with this", "the generic version", "nicotine patches"],
    "kid": SHARED["kid"],
    "jab": ["booster jabs", "MMR", "flu spray", "vaccinations", "eye test", "dental checkup", "hearing check"],
    "event": ["the 10k in {month}", "couch to 5k", "the charity half marathon", "the swimathon",
              "a beginners' yoga course", "the cycling sportive", "a first-aid course"],
    "surgery": ["my test results", "the referral letter", "a repeat prescription", "the physio referral",
                "the hospital letter", "changing my medication", "my sick note"],
    "stretchwhen": ["after work", "before bed", "every morning", "between meetings"],
    "apptnote": ["bring the referral letter", "ask about the side effects", "bring my glasses",
                 "arrive 10 mins early", "bring the list of meds", "it's at the new clinic", "take the afternoon off"],
    "until": ["the swelling goes down", "the physio clears me", "next week", "the cast comes off"],
    "kidappt": ["the dentist", "a hearing test", "the eye test", "the asthma nurse", "the orthodontist"],
    "plan": ["the meal plan", "the physio plan", "the running plan", "no alcohol on weekdays", "the sleep schedule"],
    "clash": ["work", "the school play", "the team offsite", "my shift"],
    "walknote": ["even if it's raining", "30 minutes at least", "around the park", "with {name}"],
    "drink": ["2 litres of water", "less coffee", "herbal tea instead of wine", "a glass of water every hour"],
    "food": ["breakfast", "more fibre", "fish twice a week", "less red meat", "a proper lunch"],
    "foodwhen": ["every day", "this week", "before training", ""],
    "sleepnote": ["only 5 hours last night, nap if possible", "aim for 8 hours", "stop checking the phone in bed",
                  "try the white noise app", "no coffee after 2pm"],
}
HEALTH_ONEOFF = [
    "Ask the midwife about the birth plan", "My back is killing me, sort out the desk chair height",
    "Book a hearing test for Grandad, he keeps missing the phone", "Pollen count is high, keep the windows shut",
    "Quit vaping: day 30, nearly there", "Mental health day on Friday, no work emails",
    "Chase the referral to the knee specialist", "Get my contact lens prescription renewed",
    "Weigh in on Monday morning, before breakfast", "Ask the nurse how long to wait after the booster",
    "Does the gym do a trial week?", "Sunburn is peeling, use the aloe vera",
    "Tennis elbow again, ice it tonight", "The GP wants a urine sample, drop it off by 11",
    "Counsellor said to write three good things each day", "Check whether the dentist takes NHS patients",
    "Plan rest days this week, the running plan is too much", "Snoring is worse, ask about a sleep study",
    "Foam roll the calves after the long run", "Bring the pill organiser to Gran's on Sunday",
    "Cast comes off on the 14th, book the follow-up physio", "Wisdom tooth is throbbing, call the dentist",
    "Start the couch to 5k app again", "Eye strain from screens, try the 20-20-20 rule",
    "Check the expiry date on the EpiPen", "Allergy flare-up after the new washing powder",
    "Log the migraine: started at 3pm, bright lights", "Ask the physio whether I can run yet",
    "Night feeds are brutal, nap when the baby naps", "Get the flu jab at the pharmacy, no appointment needed",
]

# ---------------------------------------------------------------- travel
TRAVEL: dict[str, list[str]] = {
    "frame": [
        "{pre}book flights to {place} for {month}", "{pre}check in online for the {place} flight",
        "{pre}print the boarding passes for {day}'s flight", "{pre}find a hotel near {landmark} in {place}",
        "Airbnb in {place}: {criteria}", "{pre}renew my passport before the {place} trip",
        "passport expires in {month}, {pre}renew it", "{pre}apply for {visa}", "train times from {station} to {station}", "{pre}book the {station} to {station} train for {day}",
        "pack: {pack}, {pack}, {pack}", "{pre}get some {currency} before we fly", "{pre}book a taxi to the airport for {time}",
        "car hire in {place}, {carnote}", "{pre}sort travel insurance for {trip}",
        "itinerary for {place}: day 1 {act}, day 2 {act}", "what's the luggage allowance on {airline}?",
        "ferry to {island}, {ferrynote}", "{pre}download offline maps for {place}",
        "{pre}learn a few phrases in {lang} before the trip", "road trip: {station} to {station}, {roadnote}",
        "seat reservations on the train to {place}", "{pre}cancel the hotel in {place}, {cancel}",
        "airport parking from the {date} to the {date}", "{pre}book {tour} in {place}",
        "is the {place} trip still on for {month}? check with {name}", "{pre}check the weather in {place} before packing",
        "flight {flightno} leaves at {time}, {flightnote}", "hostel in {place} for {nights} nights",
        "{pre}book a pitch at the campsite in {outdoors}", "camping in {outdoors}: {campnote}", "{pre}ask {name} to water the plants while we're in {place}",
        "{weekend} in {place} — {choice}?", "{pre}{stayverb} somewhere in {place} for {occasion}",
        "{pre}exchange the {currency} left over from {place}", "layover in {hub} for {hours} hours, {layover}",
        "{pre}book the {transport} from the airport to the hotel", "{pre}email the {place} hotel about {hotelq}",
        "{pre}find out if we need {entry} for {place}", "{pre}add the booking reference to {app}",
        "{pre}send {name} our flight details", "{pre}pack {pack} and {pack} for {place}",
        "{pre}check the baggage rules for {bag}", "{pre}book the kennels for the dog while we're away",
        "{pre}compare {compare} for {place}", "{pre}upgrade the seats on the {place} flight", "{place} in {month}: {placenote}",
    ],
    "station": ["London", "Paris", "Brussels", "Amsterdam", "Edinburgh", "Manchester", "Lyon", "Milan", "Vienna",
                "Munich", "Zurich", "Cologne", "Glasgow", "York", "Bristol", "Barcelona", "Madrid", "Turin"],
    "outdoors": ["Cornwall", "the Lake District", "Skye", "the Dolomites", "Snowdonia", "the Peak District",
                 "Brittany", "the Black Forest", "Pembrokeshire", "the Cairngorms"],
    "campnote": ["bring the big tent", "check the fire rules", "book the electric hook-up", "pack the camping stove",
                 "waterproofs, it'll rain"],
    "landmark": ["the old town", "the station", "the beach", "the venue", "the harbour", "the cathedral",
                 "the airport", "the city centre"],
    "criteria": ["two bedrooms, under €120 a night", "needs parking", "walkable to the beach", "pet-friendly",
                 "check the cancellation policy", "self check-in", "with a washing machine"],
    "visa": ["the ESTA", "the Schengen visa", "an e-visa for India", "a Japanese visa", "the Canadian eTA",
             "the Australian ETA", "a Turkish e-visa"],
    "pack": ["adapter", "sunglasses", "swimsuit", "passport", "phone charger", "walking boots", "sun cream",
             "travel pillow", "rain jacket", "earplugs", "a padlock", "the kids' tablets", "snorkel", "hiking poles",
             "ski gloves"],
    "currency": ["euros", "dollars", "yen", "kroner", "dirhams", "pounds", "zloty", "forint"],
    "carnote": ["pick up at the airport", "check the excess insurance", "automatic please", "need a child seat",
                "compare the deposit", "return it full"],
    "trip": ["the ski trip", "the {place} trip", "the honeymoon", "the stag do", "the family holiday",
             "the week in {place}", "the work trip to {place}"],
    "act": ["old town walking tour", "the museums", "beach", "hike to the viewpoint", "food market",
            "day trip to the coast", "the castle", "boat tour", "cooking class", "wine tasting"],
    "airline": ["Ryanair", "easyJet", "BA", "KLM", "Lufthansa", "Wizz Air", "TAP", "Vueling", "Emirates"],
    "island": ["Mull", "Arran", "the Isle of Wight", "Naxos", "Mallorca", "Capri", "Texel", "Hvar"],
    "ferrynote": ["book the car space early", "first sailing is 7am", "check if it runs in winter",
                  "foot passengers only", "tickets in the app"],
    "lang": ["Portuguese", "Italian", "Spanish", "Japanese", "Greek", "Czech", "Croatian", "German", "French"],
    "roadnote": ["stop halfway", "check the toll roads", "book the hotels tonight", "leave early to beat traffic",
                 "download the playlist"],
    "cancel": ["the dates changed", "we found a cheaper one", "before the free cancellation ends",
               "flight got moved", "it's too far from the centre"],
    "date": ["3rd", "8th", "12th", "14th", "19th", "21st", "26th", "30th"],
    "tour": ["a walking tour", "a cooking class", "the boat trip", "museum tickets", "the food tour",
             "a day trip to the vineyards", "the sunset cruise", "a guided hike", "the ski lessons"],
    "name": SHARED["name"] + SHARED["relative"],
    "flightno": ["BA492", "EZY8127", "FR1934", "KL1008", "TP1357", "U2 2215"],
    "flightnote": ["be at the airport 2 hours early", "leave home by 5", "bags drop closes 40 mins before",
                   "terminal 5", "set two alarms"],
    "nights": ["two", "three", "4", "five", "6"],
    "weekend": ["weekend", "long weekend", "three days", "a week", "mini break"],
    "choice": ["train or drive", "fly or take the ferry", "hotel or Airbnb", "bus or taxi from the airport"],
    "stayverb": ["book", "find", "look for", "reserve"],
    "occasion": ["our anniversary", "Mum's 60th", "the wedding", "the stag do", "half term", "Easter",
                 "the bank holiday", "New Year"],
    "hub": ["Dubai", "Doha", "Frankfurt", "Amsterdam", "Istanbul", "Singapore", "Helsinki"],
    "hours": ["three", "five", "nine", "twelve"],
    "layover": ["worth leaving the airport?", "check the lounge", "do we need a transit visa?",
                "find a hotel near the terminal"],
    "transport": ["shuttle", "transfer", "taxi", "train"],
    "hotelq": ["early check-in", "a cot for the baby", "late checkout", "the refund", "parking",
               "an accessible room", "the door code"],
    "entry": ["a visa", "an ETA", "proof of onward travel", "an international driving permit",
              "six months on the passport"],
    "app": ["the airline app", "the wallet", "TripIt", "the shared trip doc"],
    "bag": ["the pram", "the skis", "the golf clubs", "the bike box", "the surfboard", "liquids in hand luggage"],
    "compare": ["hire car quotes", "flight times", "hotel deals", "airport transfer prices", "travel insurance quotes"],
    "placenote": ["too hot?", "check the festival dates", "pack layers", "is it rainy season?",
                  "book restaurants ahead", "the beaches will be quieter"],
}
TRAVEL_ONEOFF = [
    "Renew the European health insurance card before we go", "Find a dog sitter for the week in Spain",
    "Set the out-of-office? no — set the house lights timer while we're away",
    "Check if the Eurostar needs passports scanned at St Pancras", "Money belt and copies of the passports",
    "Book the sleeper train to the Highlands", "Which terminal does the Lisbon flight leave from?",
    "Get the car serviced before the long drive to Scotland", "Roaming charges: buy a local SIM or an eSIM?",
    "Lost luggage claim from the Rome flight, chase it", "Campervan pickup is at 10, don't be late",
    "Museum pass for Paris covers the Louvre?", "Rail strike on the 12th, rebook the train",
    "Photocopy the travel insurance documents", "Pay the tourist tax at the hotel in cash",
    "Kids' passports expire this year, renew both", "Book the airport lounge for the early flight",
    "Hand luggage only, pack light!", "Find a vegetarian-friendly restaurant for the first night in Rome",
    "Downloads for the plane: films for the kids", "Check the snow report before driving up to the resort",
    "Confirm the ferry crossing time with the port", "Book a rental bike for the Amsterdam days",
    "Reclaim the tax-free shopping at the airport", "Find a parking spot near the cruise terminal",
    "Overnight bus or the early flight? compare prices", "Ask the host where to leave the keys on checkout",
    "Sort out the route for the Route 66 drive", "Book a table for the harbour restaurant on our last night",
    "Pack the snorkelling gear for the reef trip",
]

# ---------------------------------------------------------------- mixed (two kinds in one note)
MIXED: dict[str, list[str]] = {
    "frame": [
        "{pre}buy {travelbuy} before the {place} trip", "{pre}pick up my prescription on the way to the office",
        "{pre}expense the hotel from the {place} conference", "{pre}book the hotel for the team offsite in {place}",
        "{pre}order a standing desk, my back is killing me", "{exercise} before work, then prep the slides for {day}",
        "{pre}get travel vaccinations for {place}", "{pre}buy running shoes for the 10k",
        "motion sickness tablets for the ferry to {island}", "flight to {place} for the client meeting on {day}",
        "{pre}ask HR about the cycle-to-work scheme", "new glasses: book the optician, then compare frames online",
        "{pre}book a massage at the hotel spa in {place}", "first-aid kit for the camping trip",
        "healthy snacks for the office kitchen", "{pre}buy a new suitcase and check the airline's size limits",
        "gym bag, laptop charger and passport for {day}'s work trip", "{pre}order sunscreen and insect repellent for {place}",
        "dentist at {time}, so move the standup", "{pre}claim the flu jab back on work expenses",
        "business trip to {place}: pack the suit and the inhaler", "{pre}buy a travel adapter and a power bank",
        "ergonomic keyboard for the wrist pain", "{pre}take the allergy tablets on the plane",
        "work from the {place} flat for a week, check the wifi", "{pre}buy gifts for the team in the airport",
        "jet lag plan for the {place} conference: {jetlag}", "{pre}book a physio session before the ski trip",
        "walking boots for the {place} hike, break them in first", "{pre}stock the first-aid bag for the road trip",
        "sick day tomorrow, cancel the {place} train", "{pre}buy snacks for the long drive to {place}",
    ],
    "travelbuy": ["sunscreen", "a travel adapter", "packing cubes", "a neck pillow", "mosquito spray",
                  "a waterproof phone case", "travel-size toiletries", "a new swimsuit", "hiking socks"],
    "exercise": ["run", "gym", "swim", "yoga", "a quick walk"],
    "island": TRAVEL["island"],
    "jetlag": ["no naps", "melatonin?", "early nights before", "lots of water on the plane"],
}

GRAMMARS = {"work": WORK, "shopping": SHOPPING, "health": HEALTH, "travel": TRAVEL, "mixed": MIXED}
ONEOFFS = {"work": WORK_ONEOFF, "shopping": SHOPPING_ONEOFF, "health": HEALTH_ONEOFF, "travel": TRAVEL_ONEOFF, "mixed": []}
SHARE = {"work": 0.23, "shopping": 0.23, "health": 0.23, "travel": 0.23, "mixed": 0.08}

SHORTHAND = [("tomorrow", "tmrw"), ("appointment", "appt"), ("please", "pls"), (" and ", " & "), ("with ", "w/ "),
             ("minutes", "mins"), ("before", "b4"), ("about", "re"), ("the ", "")]
SLOT = re.compile(r"\{(\w+)\}")


def expand(template: str, grammar: dict[str, list[str]], rng: random.Random,
           used: dict[str, set[str]] | None = None, depth: int = 0) -> str:
    """Fill each ``{slot}`` from the kind's lists (then the shared ones), recursively. Within one
    note a slot never repeats a choice, so lists read "eggs, milk and rice", not "eggs, eggs"."""
    if depth > 6:
        raise RuntimeError(f"grammar loops at {template!r}")
    used = {} if used is None else used

    def fill(match: re.Match) -> str:
        name = match.group(1)
        options = grammar.get(name) or SHARED.get(name)
        if options is None:
            raise KeyError(f"no slot {name!r}")
        taken = used.setdefault(name, set())
        fresh = [o for o in options if o not in taken] or options
        choice = rng.choice(fresh)
        taken.add(choice)
        return expand(choice, grammar, rng, used, depth + 1)

    return SLOT.sub(fill, template)


def typo(text: str, rng: random.Random) -> str:
    """Drop or swap one letter of a longer lower-case word, as hurried thumbs do."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 6 and w.isalpha() and w.islower()]
    if not candidates:
        return text
    i = rng.choice(candidates)
    w, k = words[i], rng.randrange(1, len(words[i]) - 2)
    words[i] = w[:k] + w[k + 1:] if rng.random() < 0.6 else w[:k] + w[k + 1] + w[k] + w[k + 2:]
    return " ".join(words)


def style(text: str, rng: random.Random) -> str:
    """How people actually type notes: tidy most of the time, sometimes hurried."""
    text = re.sub(r"\s+", " ", text).strip().rstrip(",")
    text = text.replace(" ,", ",").replace("the the ", "the ")
    if rng.random() < 0.08:
        old, new = rng.choice(SHORTHAND)
        if old in text and not (old == "the " and text.lower().startswith("the ")):
            text = text.replace(old, new, 1)
    if rng.random() < 0.04:
        text = typo(text, rng)
    if text.startswith("the ") and rng.random() < 0.7:  # "Design crit Tue at 4pm", as notes are written
        text = text[4:]
    text = text[:1].upper() + text[1:]
    roll = rng.random()
    if roll < 0.16:
        text = text.lower()
    elif roll < 0.19:
        text += rng.choice(["!", "!!", " asap", " — urgent", "!!!"])
    return text


def normalise(text: str) -> str:
    """The project's one definition of "the same text" (what leakage and overlap checks use)."""
    from mlx_distill.data.normalise import normalise_text

    return normalise_text(text)


def dedupe_key(text: str) -> str:
    """Stricter than ``normalise``: punctuation-insensitive, so near-copies count as one."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def near_copy(key: str, others: list[set[str]], limit: float = 0.75) -> bool:
    """Most of the words of the shorter note shared with a labelled note: "have to rehearse the
    investor pitch with Olu" next to the test note "Rehearse the investor pitch with Sam" would
    flatter the demo's test score."""
    words = set(key.split())
    return any(len(shared := words & other) >= 3 and len(shared) >= limit * min(len(words), len(other))
               for other in others)


def labelled_notes() -> set[str]:
    notes = set()
    for name in ("train.jsonl", "test.jsonl"):
        for line in (DATA_DIR / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                notes.add(normalise(json.loads(line)["text"]))
    return notes


def generate(count: int, seed: int) -> tuple[list[str], Counter]:
    rng = random.Random(seed)
    forbidden = labelled_notes()
    forbidden_keys = {dedupe_key(t) for t in forbidden}
    forbidden_words = [set(k.split()) for k in forbidden_keys]
    seen: set[str] = set()
    notes: list[str] = []
    kinds: Counter = Counter()
    targets = {kind: round(share * count) for kind, share in SHARE.items()}
    targets["work"] += count - sum(targets.values())
    for kind, target in targets.items():
        grammar, oneoffs = GRAMMARS[kind], list(ONEOFFS[kind])
        made, attempts = 0, 0
        rng.shuffle(oneoffs)
        while made < target:
            attempts += 1
            if attempts > 200 * target:
                raise RuntimeError(f"{kind}: only {made} distinct notes of {target}; add phrases")
            if oneoffs and rng.random() < 0.08:
                raw = oneoffs.pop()
            else:
                raw = expand(rng.choice(grammar["frame"]), grammar, rng)
            note = style(raw, rng)
            key = dedupe_key(note)
            if key in seen or key in forbidden_keys or len(note) < 8 or near_copy(key, forbidden_words):
                continue
            seen.add(key)
            notes.append(note)
            kinds[kind] += 1
            made += 1
    rng.shuffle(notes)
    assert not {normalise(n) for n in notes} & forbidden, "a note equals a labelled demo note"
    assert len({normalise(n) for n in notes}) == len(notes)
    assert all("{" not in n and "\n" not in n for n in notes)
    return notes, kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DATA_DIR / "unlabeled.txt")
    args = parser.parse_args()
    notes, kinds = generate(args.count, args.seed)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text("\n".join(notes) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    lengths = sorted(len(n.split()) for n in notes)
    print(f"{args.out}: {len(notes)} notes; kinds {dict(kinds)}; words min {lengths[0]} "
          f"median {lengths[len(lengths) // 2]} max {lengths[-1]}")


if __name__ == "__main__":
    main()
