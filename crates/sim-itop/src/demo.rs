//! The recorded server's initial state: the iTop installer's demo data as far as
//! the transcript shows it (organisations 1-3, persons incl. Agatha Christie 15,
//! team Helpdesk 37, services 1-3). Other demo persons are reconstructed so that
//! the transcript's observations hold (three persons named Pierre, next contact
//! id 40).

use crate::pj::Pj;
use crate::schema;
use crate::store::{Db, Obj};

fn put(db: &mut Db, class: &str, id: u64, fields: &[(&'static str, &str)]) {
    let Some(def) = schema::class(class) else {
        return;
    };
    let mut obj = Obj::new(def);
    obj.id = id;
    for (k, v) in fields {
        obj.values.insert(k, Pj::s(*v));
    }
    db.insert(obj);
}

pub fn load(db: &mut Db) {
    put(
        db,
        "Organization",
        1,
        &[("name", "My Company/Department"), ("code", "SOMECODE")],
    );
    put(
        db,
        "Organization",
        2,
        &[("name", "IT Department"), ("parent_id", "1")],
    );
    put(db, "Organization", 3, &[("name", "Demo")]);
    let persons: &[(u64, &str, &str, &str, &str)] = &[
        (1, "My first name", "My last name", "1", ""),
        (2, "Claude", "Monet", "3", "claude.monet@demo.com"),
        (3, "Pierre", "Goiffon", "2", "pierre.goiffon@demo.com"),
        (4, "Pierre", "Dupont", "3", "pierre.dupont@demo.com"),
        (5, "Pierre", "Martin", "3", "pierre.martin@demo.com"),
        (6, "Edgar", "Degas", "3", "edgar.degas@demo.com"),
        (7, "Victor", "Hugo", "2", "victor.hugo@demo.com"),
        (8, "Gustave", "Flaubert", "3", "gustave.flaubert@demo.com"),
        (9, "Jules", "Verne", "2", "jules.verne@demo.com"),
        (10, "Emile", "Zola", "3", "emile.zola@demo.com"),
        (11, "George", "Sand", "3", "george.sand@demo.com"),
        (12, "Albert", "Camus", "3", "albert.camus@demo.com"),
        (13, "Marguerite", "Duras", "2", "marguerite.duras@demo.com"),
        (14, "Arthur", "Rimbaud", "3", "arthur.rimbaud@demo.com"),
        (15, "Agatha", "Christie", "3", "agatha.christie@demo.com"),
        (16, "Anna", "Gavalda", "3", "anna.gavalda@demo.com"),
    ];
    for (id, first, last, org, email) in persons {
        put(
            db,
            "Person",
            *id,
            &[
                ("first_name", first),
                ("name", last),
                ("org_id", org),
                ("email", email),
            ],
        );
    }
    put(
        db,
        "Team",
        37,
        &[
            ("name", "Helpdesk"),
            ("org_id", "2"),
            ("email", "helpdesk@demo.com"),
        ],
    );
    put(
        db,
        "Team",
        38,
        &[("name", "Level 2 Support"), ("org_id", "2")],
    );
    put(
        db,
        "Team",
        39,
        &[("name", "Network Support"), ("org_id", "2")],
    );
    put(
        db,
        "Service",
        1,
        &[("name", "Computers and peripherals"), ("org_id", "2")],
    );
    put(db, "Service", 2, &[("name", "Software"), ("org_id", "2")]);
    put(
        db,
        "Service",
        3,
        &[("name", "Telecom and connectivity"), ("org_id", "2")],
    );
}
